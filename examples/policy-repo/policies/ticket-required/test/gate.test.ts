// Compiled by `verdict policy build .`; run with `node --test` on its output.
import { test } from "node:test";
import assert from "node:assert/strict";
import { verdictOf } from "../vendor/verdict-sdk-js/src/index.js";
import { fixtureInput } from "../vendor/verdict-sdk-js/src/testing.js";
import { Gate } from "../src/gate.js";

const production = { service: "checkout", environment: "production", version: "v2" };

test("a production deploy without a ticket holds", () => {
  const input = fixtureInput({ deployment: production, change: {} });
  assert.equal(verdictOf(new Gate().evaluate(input)), "hold");
});

test("an invalid pattern is refused with its text", () => {
  assert.throws(() => new Gate().validateSettings('{"pattern": "("}'), /pattern `\(`/);
});
