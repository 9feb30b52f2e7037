/**
 * Write a Verdict deployment policy in TypeScript (or JavaScript).
 *
 * The WIT types (`Input`, `Outcome`, `Info`, …) are the declarations
 * `jco types` generates from `wit/` at build time (in `generated/`, never
 * committed); this module adds the helpers the Rust and Python SDKs have:
 * metric lookup, reasons with metric/observed/threshold, votes and
 * abstentions, settings parsing with clear errors, and (in `stats`) mean,
 * quantiles and the normal CDF.
 *
 * A policy is an object with `describe`, `validateSettings` and `evaluate`;
 * its entry module exports it with `exportPolicy` (see `component.ts`).
 * The logic is plain TypeScript, unit-tested under Node without Wasm;
 * `testing.ts` even runs the policy's `fixtures/*.json` natively.
 */
import type * as wit from "verdict:policy/types@0.1.0";

export * as stats from "./stats.js";

export type Input = wit.Input;
export type Deployment = wit.Deployment;
export type Change = wit.Change;
export type Metric = wit.Metric;
export type Reason = wit.Reason;
export type Outcome = wit.Outcome;
export type Info = wit.Info;
export type Verdict = wit.Verdict;

/** Thrown by a policy to return `err(message)`: refused settings, or an
 * evaluation that cannot decide. */
export class PolicyError extends Error {}

/** The policy the host calls (the exports of the WIT world). */
export interface Policy {
  describe(): Info;
  /** Throw a PolicyError for settings the policy refuses. */
  validateSettings(settings: string): void;
  evaluate(input: Input): Outcome;
}

const SEVERITY: Verdict[] = ["promote", "hold", "rollback", "freeze"];

/** promote < hold < rollback < freeze, as the host combines votes. */
export function severity(v: Verdict): number {
  return SEVERITY.indexOf(v);
}

export function maxVerdict(a: Verdict, b: Verdict): Verdict {
  return severity(a) >= severity(b) ? a : b;
}

/** The metric called `name`, if the request carries it. */
export function metric(input: Input, name: string): Metric | undefined {
  return input.metrics.find((m) => m.name === name);
}

/** Whether any label of the change equals `label` (case-insensitive). */
export function hasLabel(input: Input, label: string): boolean {
  const want = label.toLowerCase();
  return input.change.labels.some((l) => l.toLowerCase() === want);
}

/** A reason, optionally tied to a metric with its observed value and threshold. */
export function reason(
  message: string,
  on?: { metric: string; observed: number; threshold?: number },
): Reason {
  return on
    ? { message, metric: on.metric, observed: on.observed, threshold: on.threshold }
    : { message };
}

/** Kept well within the host's default limits (64 reasons of 4096 bytes),
 * so a long list never turns a vote into an error. */
export const MAX_REASONS = 32;
export const MAX_MESSAGE = 1024;

function clip(message: string): string {
  const bytes = new TextEncoder().encode(message);
  if (bytes.length <= MAX_MESSAGE) return message;
  let cut = new TextDecoder().decode(bytes.slice(0, MAX_MESSAGE - 3));
  // A cut inside a multi-byte character decodes to U+FFFD: drop it.
  cut = cut.replace(/\uFFFD$/, "");
  return cut + "...";
}

function bounded(reasons: Reason[]): Reason[] {
  const out = reasons.map((r) => ({ ...r, message: clip(r.message) }));
  if (out.length <= MAX_REASONS) return out;
  const rest = out.length - (MAX_REASONS - 1);
  return [...out.slice(0, MAX_REASONS - 1), { message: `... and ${rest} more` }];
}

export function vote(verdict: Verdict, reasons: Reason[]): Outcome {
  return { tag: "vote", val: { verdict, reasons: bounded(reasons) } };
}
export const promote = (reasons: Reason[]) => vote("promote", reasons);
export const hold = (reasons: Reason[]) => vote("hold", reasons);
export const rollback = (reasons: Reason[]) => vote("rollback", reasons);
export const freeze = (reasons: Reason[]) => vote("freeze", reasons);
export function abstain(why: string): Outcome {
  return { tag: "abstain", val: why };
}

/** The verdict of a vote, `undefined` for an abstention. */
export function verdictOf(o: Outcome): Verdict | undefined {
  return o.tag === "vote" ? o.val.verdict : undefined;
}

/** Every reason's message (or the abstention's), joined. */
export function messages(o: Outcome): string {
  return o.tag === "vote" ? o.val.reasons.map((r) => r.message).join(" | ") : o.val;
}

/** Describe a policy; `defaults` are its default settings. */
export function info(
  name: string,
  version: string,
  summary: string,
  opts: { metrics?: string[]; defaults?: object } = {},
): Info {
  return {
    name,
    version,
    summary,
    metrics: opts.metrics ?? [],
    defaultSettings: JSON.stringify(opts.defaults ?? {}),
  };
}

function kind(v: unknown): string {
  if (typeof v === "boolean") return "true or false";
  if (typeof v === "number") return "a number";
  if (typeof v === "string") return "a string";
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  return "an object";
}

/**
 * Parse the binding's settings JSON over `defaults` (whose fields and their
 * types are the schema). Like the Rust SDK: an empty document is `{}`,
 * unknown fields are refused (a typo must not silently keep a default), and
 * a value of the wrong type is refused naming the field. Throws PolicyError.
 */
export function parseSettings<T extends object>(settings: string, defaults: T): T {
  let doc: unknown;
  try {
    doc = JSON.parse(settings.trim() || "{}");
  } catch (e) {
    throw new PolicyError(`invalid settings: not JSON (${(e as Error).message})`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new PolicyError("invalid settings: expected a JSON object");
  }
  const fields = Object.keys(defaults);
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [name, value] of Object.entries(doc)) {
    if (!fields.includes(name)) {
      throw new PolicyError(
        `invalid settings: unknown field \`${name}\`, expected one of ` +
          fields.map((f) => `\`${f}\``).join(", "),
      );
    }
    const want = (defaults as Record<string, unknown>)[name];
    if (want !== null && kind(want) !== kind(value)) {
      throw new PolicyError(
        `invalid settings: \`${name}\` must be ${kind(want)}, got ${JSON.stringify(value)}`,
      );
    }
    out[name] = value;
  }
  return out as T;
}

/** Numbers for humans: about four significant digits, no trailing zeros. */
export function num(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  const decimals = Math.max(0, Math.min(12, 3 - Math.floor(Math.log10(Math.abs(x)))));
  const s = x.toFixed(decimals);
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}

/** The host's log sink; `component.ts` points it at the `log` import.
 * Natively, lines are kept in `log.lines` for tests to look at. */
export const log = {
  lines: [] as string[],
  sink: (level: string, message: string) => {
    log.lines.push(`${level}: ${message}`);
  },
  debug: (m: string) => log.sink("debug", m),
  info: (m: string) => log.sink("info", m),
  warn: (m: string) => log.sink("warn", m),
  error: (m: string) => log.sink("error", m),
};
