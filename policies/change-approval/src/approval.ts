/**
 * change-approval: a change that touches protected paths ships only with the
 * owners' approval.
 *
 * Each rule is a CODEOWNERS-style pattern with its owner and what counts as
 * their approval: one of the rule's labels on the change, or (where the rule
 * accepts one) a ticket reference matching `ticket_pattern`. As in
 * CODEOWNERS, the last rule matching a path decides who owns it. A change
 * whose every protected path is approved is promoted; one with a path
 * lacking approval is held, with a reason per unapproved rule.
 */
import {
  Input, Outcome, Policy, PolicyError, Reason, abstain, hasLabel, hold, info, log, parseSettings,
  promote, reason,
} from "../../sdk-js/src/index.js";

export interface Rule {
  /** CODEOWNERS syntax: `/dir/` anchored at the root, `*.tf` anywhere, `**` any depth. */
  pattern: string;
  owner: string;
  /** Labels that count as this owner's approval (case-insensitive). */
  labels: string[];
  /** Whether a ticket reference (matching `ticket_pattern`) approves too. */
  accept_ticket: boolean;
}

export interface Settings {
  rules: Rule[];
  /** Environments gated; the policy abstains elsewhere. Empty: every one. */
  environments: string[];
  ticket_pattern: string;
}

export const DEFAULTS: Settings = {
  rules: [
    { pattern: "/db/migrations/", owner: "dba", labels: ["dba-approved"], accept_ticket: false },
    { pattern: "*.tf", owner: "platform", labels: ["platform-approved"], accept_ticket: true },
    { pattern: "/.github/workflows/", owner: "security", labels: ["security-approved"], accept_ticket: false },
  ],
  environments: ["production"],
  ticket_pattern: "^[A-Z][A-Z0-9]+-[0-9]+$",
};

/** A CODEOWNERS pattern as a regular expression over a repository path. */
export function patternRegExp(pattern: string): RegExp {
  let p = pattern.trim();
  // No slash except a trailing one: matches at any depth; else anchored.
  const anchored = p.replace(/\/$/, "").includes("/");
  p = p.replace(/^\//, "");
  const dir = p.endsWith("/");
  if (dir) p = p.slice(0, -1);
  let re = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "*" && p[i + 1] === "*") {
      re += ".*";
      i++;
      if (p[i + 1] === "/") i++; // `**/` also matches no directory at all
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  // A pattern names a file or a directory: everything under it matches too.
  return new RegExp(`${anchored ? "^" : "(^|/)"}${re}${dir ? "/" : "(/|$)"}`);
}

interface Compiled {
  rule: Rule;
  re: RegExp;
}

function settings(text: string): { s: Settings; rules: Compiled[]; ticket: RegExp } {
  const s = parseSettings(text, DEFAULTS);
  const rules = s.rules.map((r, i) => {
    const at = `rule ${i + 1}`;
    if (typeof r !== "object" || r === null) throw new PolicyError(`invalid settings: ${at} must be an object`);
    const unknown = Object.keys(r).find((k) => !["pattern", "owner", "labels", "accept_ticket"].includes(k));
    if (unknown) throw new PolicyError(`invalid settings: ${at} has an unknown field \`${unknown}\``);
    if (typeof r.pattern !== "string" || r.pattern.trim() === "") {
      throw new PolicyError(`invalid settings: ${at} needs a non-empty \`pattern\``);
    }
    if (typeof r.owner !== "string" || r.owner === "") throw new PolicyError(`invalid settings: ${at} needs an \`owner\``);
    const labels = r.labels ?? [];
    const acceptTicket = r.accept_ticket ?? false;
    if (!Array.isArray(labels) || labels.some((l) => typeof l !== "string")) {
      throw new PolicyError(`invalid settings: ${at}: \`labels\` must be a list of strings`);
    }
    if (labels.length === 0 && !acceptTicket) {
      throw new PolicyError(`invalid settings: ${at} (\`${r.pattern}\`) can never be approved: give it labels or accept_ticket`);
    }
    return { rule: { ...r, labels, accept_ticket: acceptTicket }, re: patternRegExp(r.pattern) };
  });
  let ticket: RegExp;
  try {
    ticket = new RegExp(s.ticket_pattern);
  } catch (e) {
    throw new PolicyError(`invalid settings: \`ticket_pattern\` is not a regular expression (${(e as Error).message})`);
  }
  return { s, rules, ticket };
}

export class ChangeApproval implements Policy {
  describe() {
    return info(
      "change-approval",
      "0.1.0",
      "changes touching protected paths (CODEOWNERS-style rules) need the owner's approval label or a ticket",
      { defaults: DEFAULTS },
    );
  }

  validateSettings(text: string): void {
    settings(text);
  }

  evaluate(input: Input): Outcome {
    const { s, rules, ticket } = settings(input.settings);
    const env = input.deployment.environment;
    if (s.environments.length > 0 && !s.environments.includes(env)) {
      return abstain(`environment \`${env}\` is not gated (gated: ${s.environments.join(", ")})`);
    }
    const paths = input.change.paths;
    if (paths.length === 0) return abstain("the request lists no changed paths");
    // Last matching rule owns the path, as in CODEOWNERS.
    const owned = new Map<Compiled, string[]>();
    for (const path of paths) {
      const p = path.replace(/^\.?\//, "");
      let owner: Compiled | undefined;
      for (const r of rules) if (r.re.test(p)) owner = r;
      if (owner) owned.set(owner, [...(owned.get(owner) ?? []), p]);
    }
    if (owned.size === 0) {
      return promote([reason(`none of the ${paths.length} changed paths is protected`)]);
    }
    const t = input.change.ticket;
    const ticketOk = t !== undefined && ticket.test(t);
    const missing: Reason[] = [];
    const approved: Reason[] = [];
    for (const [{ rule }, files] of owned) {
      const label = rule.labels.find((l) => hasLabel(input, l));
      const shown = files.slice(0, 3).join(", ") + (files.length > 3 ? ` and ${files.length - 3} more` : "");
      if (label) {
        approved.push(reason(`${shown} (\`${rule.pattern}\`, ${rule.owner}): approved by label \`${label}\``));
      } else if (rule.accept_ticket && ticketOk) {
        approved.push(reason(`${shown} (\`${rule.pattern}\`, ${rule.owner}): approved by ticket ${t}`));
      } else {
        const ways = rule.labels.map((l) => `label \`${l}\``);
        if (rule.accept_ticket) {
          ways.push(t === undefined ? "a ticket" : `a ticket matching \`${s.ticket_pattern}\` (got \`${t}\`)`);
        }
        missing.push(reason(`${shown} (\`${rule.pattern}\`) needs ${rule.owner}'s approval: ${ways.join(" or ")}`));
      }
    }
    log.debug(`${owned.size} owners, ${missing.length} without approval`);
    return missing.length > 0 ? hold([...missing, ...approved]) : promote(approved);
  }
}
