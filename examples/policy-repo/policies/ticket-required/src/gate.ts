// `ticket-required`: a deploy to a protected environment must name a change
// ticket (`change.ticket`, matching `pattern`); without one it is held. A
// change labelled with `emergency_label` goes ahead, and the reason says so,
// so the audit trail shows every bypass.
import {
  Input,
  Outcome,
  Policy,
  PolicyError,
  abstain,
  hold,
  info,
  parseSettings,
  promote,
  reason,
} from "../vendor/verdict-sdk-js/src/index.js";

const DEFAULTS = {
  environments: ["production"],
  pattern: "^[A-Z][A-Z0-9]+-[0-9]+$",
  emergency_label: "emergency",
};

function settings(text: string): { s: typeof DEFAULTS; ticket: RegExp } {
  const s = parseSettings(text, DEFAULTS);
  try {
    return { s, ticket: new RegExp(s.pattern) };
  } catch (e) {
    throw new PolicyError(`pattern \`${s.pattern}\` is not a valid regular expression: ${e}`);
  }
}

export class Gate implements Policy {
  describe() {
    return info("ticket-required", "0.1.0", "holds deploys to protected environments without a change ticket", {
      defaults: DEFAULTS,
    });
  }

  validateSettings(text: string): void {
    settings(text);
  }

  evaluate(input: Input): Outcome {
    const { s, ticket } = settings(input.settings);
    const env = input.deployment.environment;
    if (!s.environments.includes(env)) {
      return abstain(`\`${env}\` is not a protected environment`);
    }
    const t = input.change.ticket;
    if (t !== undefined && ticket.test(t)) {
      return promote([reason(`change ticket ${t}`)]);
    }
    if (input.change.labels.includes(s.emergency_label)) {
      return promote([reason(`no change ticket, but labelled \`${s.emergency_label}\`: emergency change`)]);
    }
    const why = t === undefined ? "no change ticket" : `\`${t}\` is not a change ticket (${s.pattern})`;
    return hold([reason(`${why} for a \`${env}\` deploy`)]);
  }
}
