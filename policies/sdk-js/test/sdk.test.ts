import { test } from "node:test";
import assert from "node:assert/strict";
import {
  PolicyError, abstain, hasLabel, hold, info, log, maxVerdict, messages, metric, num,
  parseSettings, reason, stats, verdictOf,
} from "../src/index.js";
import { check, fixtureInput } from "../src/testing.js";
import { exportPolicy } from "../src/component.js";

const defaults = { threshold: 0.5, count: 3, enabled: true, labels: [] as string[] };

test("settings default when empty and override when given", () => {
  assert.deepEqual(parseSettings("", defaults), defaults);
  const s = parseSettings('{"threshold": 2, "labels": ["a"]}', defaults);
  assert.equal(s.threshold, 2);
  assert.deepEqual(s.labels, ["a"]);
  assert.equal(s.count, 3);
});

test("bad settings are refused naming the problem", () => {
  const cases: [string, RegExp][] = [
    ['{"treshold": 1}', /unknown field `treshold`/],
    ['{"threshold": "high"}', /`threshold` must be a number/],
    ['{"enabled": 1}', /`enabled` must be true or false/],
    ["[1]", /expected a JSON object/],
    ["{nope", /not JSON/],
  ];
  for (const [doc, re] of cases) {
    assert.throws(() => parseSettings(doc, defaults), (e: unknown) =>
      e instanceof PolicyError && re.test(e.message) && e.message.startsWith("invalid settings"));
  }
});

test("stats match the other SDKs' definitions", () => {
  assert.equal(stats.mean([]), undefined);
  assert.equal(stats.mean([1, 2, 3, 6]), 3);
  assert.equal(stats.quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(stats.quantile(Float64Array.from([4, 1, NaN, 2, 3]), 0.25), 1.75);
  assert.equal(stats.quantile([1], 1.5), undefined);
  assert.ok(Math.abs(stats.normalCdf(0) - 0.5) < 1e-7);
  assert.ok(Math.abs(stats.normalCdf(1.959963984540054) - 0.975) < 1e-6);
});

test("metric lookup, labels, reasons and bounded votes", () => {
  const input = fixtureInput({
    deployment: { service: "a", environment: "prod" },
    change: { labels: ["Approved"] },
    metrics: [{ name: "errors", canary: [1, null, 2] }],
  });
  assert.deepEqual(Array.from(metric(input, "errors")!.canary), [1, 2]);
  assert.equal(metric(input, "latency"), undefined);
  assert.ok(hasLabel(input, "approved") && !hasLabel(input, "hotfix"));
  assert.equal(input.nowUnixMs, 1767225600000n);
  const r = reason("too many", { metric: "errors", observed: 12, threshold: 10 });
  assert.deepEqual([r.metric, r.observed, r.threshold], ["errors", 12, 10]);
  const many = hold(Array.from({ length: 100 }, () => reason("x".repeat(5000))));
  assert.equal(many.tag, "vote");
  if (many.tag === "vote") {
    assert.equal(many.val.reasons.length, 32);
    assert.equal(many.val.reasons[31].message, "... and 69 more");
    assert.ok(many.val.reasons[0].message.length <= 1024);
  }
  assert.equal(verdictOf(abstain("no data")), undefined);
  assert.equal(messages(abstain("no data")), "no data");
  assert.equal(maxVerdict("hold", "rollback"), "rollback");
});

test("info and num", () => {
  assert.equal(JSON.parse(info("p", "1", "s", { defaults }).defaultSettings).count, 3);
  assert.equal(num(0.012345), "0.01235");
  assert.equal(num(1234.5), "1235");
  assert.equal(num(2), "2");
});

test("the component bridge throws the policy's own words and routes the log", () => {
  const seen: string[] = [];
  const p = exportPolicy({
    describe: () => info("p", "1", "s"),
    validateSettings: (s) => { parseSettings(s, defaults); },
    evaluate: () => { log.info("deciding"); throw new TypeError("x is undefined"); },
  }, (level, m) => seen.push(`${level}:${m}`));
  assert.throws(() => p.validateSettings('{"nope":1}'), (e: unknown) =>
    typeof e === "string" && e.startsWith("invalid settings: unknown field `nope`"));
  assert.throws(() => p.evaluate(fixtureInput({ deployment: {} })), (e: unknown) =>
    e === "TypeError: x is undefined");
  assert.deepEqual(seen, ["info:deciding"]);
});

test("fixtures are checked like verdict policy test does", () => {
  const policy = {
    describe: () => info("p", "1", "s"),
    validateSettings: (s: string) => { parseSettings(s, defaults); },
    evaluate: (i: ReturnType<typeof fixtureInput>) => hold([reason(`${i.change.linesAdded} lines`)]),
  };
  const input = { deployment: { service: "a" }, change: { lines_added: 3 } };
  assert.equal(check(policy, { input, expect: "hold", reason_contains: "3 lines" }), undefined);
  assert.match(check(policy, { input, expect: "promote" })!, /expected promote/);
  assert.equal(check(policy, { input, settings: { bad: 1 }, expect: "error", reason_contains: "unknown field" }), undefined);
});
