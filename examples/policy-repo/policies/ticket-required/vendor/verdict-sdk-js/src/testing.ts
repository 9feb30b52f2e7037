/**
 * Run a policy's `fixtures/*.json` natively under Node (no Wasm), with the
 * format `verdict policy test` reads, so the unit tests check the logic
 * against the very fixtures the real sandbox runs. A fixture without
 * `input.time` is decided at 2026-01-01T00:00:00Z, as `verdict policy test` does.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Input, Policy } from "./index.js";
import { PolicyError, messages, verdictOf } from "./index.js";

export const DEFAULT_FIXTURE_TIME = "2026-01-01T00:00:00Z";

type Json = Record<string, any>;

/** The policy's input for a decision request body (a fixture's `input`). */
export function fixtureInput(doc: Json, settings: object = {}): Input {
  const d = doc.deployment ?? {};
  const c = doc.change ?? {};
  const samples = (xs: (number | null)[] | undefined) =>
    Float64Array.from((xs ?? []).filter((x): x is number => x !== null));
  return {
    deployment: {
      service: d.service ?? "",
      environment: d.environment ?? "",
      version: d.version ?? "",
      previousVersion: d.previous_version,
      region: d.region,
      stage: d.stage,
      trafficPercent: d.traffic_percent,
    },
    change: {
      commit: c.commit,
      author: c.author,
      title: c.title,
      filesChanged: c.files_changed ?? 0,
      linesAdded: c.lines_added ?? 0,
      linesRemoved: c.lines_removed ?? 0,
      paths: c.paths ?? [],
      labels: c.labels ?? [],
      ticket: c.ticket,
      risk: c.risk,
    },
    metrics: (doc.metrics ?? []).map((m: Json) => ({
      name: m.name,
      unit: m.unit,
      baseline: samples(m.baseline),
      canary: samples(m.canary),
      value: m.value,
    })),
    nowUnixMs: BigInt(Date.parse(doc.time ?? DEFAULT_FIXTURE_TIME)),
    settings: JSON.stringify(settings),
  };
}

/** `undefined` when the fixture passes, else what went wrong. */
export function check(policy: Policy, fixture: Json): string | undefined {
  const settings = fixture.settings ?? {};
  const want: string = fixture.expect;
  const contains: string | undefined = fixture.reason_contains;
  try {
    policy.validateSettings(JSON.stringify(settings));
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    if (want !== "error") return `settings rejected: ${e.message}`;
    return !contains || e.message.includes(contains) ? undefined : `error \`${e.message}\` lacks \`${contains}\``;
  }
  if (want === "error") return "expected the settings to be rejected, but they were accepted";
  const out = policy.evaluate(fixtureInput(fixture.input, settings));
  const got = verdictOf(out) ?? "abstain";
  if (got !== want) return `expected ${want}, got ${got}: ${messages(out)}`;
  if (contains && !messages(out).includes(contains)) {
    return `no reason contains \`${contains}\`; reasons were: ${messages(out)}`;
  }
  return undefined;
}

/** [fixtures run, failures as "file: what went wrong"]. */
export function runFixtures(policy: Policy, dir: string): [number, string[]] {
  const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
  const failures: string[] = [];
  for (const f of files) {
    const problem = check(policy, JSON.parse(readFileSync(join(dir, f), "utf8")));
    if (problem) failures.push(`${f}: ${problem}`);
  }
  return [files.length, failures];
}
