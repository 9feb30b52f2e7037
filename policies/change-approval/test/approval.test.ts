import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { messages, verdictOf } from "../../sdk-js/src/index.js";
import { fixtureInput, runFixtures } from "../../sdk-js/src/testing.js";
import { ChangeApproval, DEFAULTS, patternRegExp } from "../src/approval.js";

// dist/change-approval/test -> the project directory.
const HERE = join(import.meta.dirname ?? ".", "..", "..", "..");

test("every fixture passes natively", () => {
  const [count, failures] = runFixtures(new ChangeApproval(), join(HERE, "fixtures"));
  assert.ok(count >= 8, `${count} fixtures`);
  assert.deepEqual(failures, []);
});

test("codeowners patterns: anchored, anywhere, directories, globs", () => {
  const m = (p: string, path: string) => patternRegExp(p).test(path);
  assert.ok(m("/db/migrations/", "db/migrations/0042_add.sql"));
  assert.ok(!m("/db/migrations/", "src/db/migrations/x.sql"));
  assert.ok(m("*.tf", "infra/prod/main.tf"));
  assert.ok(!m("*.tf", "infra/prod/main.tfvars"));
  assert.ok(m("docs/**/secret.md", "docs/a/b/secret.md"));
  assert.ok(m("docs/**/secret.md", "docs/secret.md"));
  assert.ok(m("Makefile", "sub/dir/Makefile"));
  assert.ok(m("/src/*.c", "src/a.c") && !m("/src/*.c", "src/x/a.c"));
  assert.ok(m("a+b.txt", "a+b.txt") && !m("a+b.txt", "aab.txt"));
});

test("the last matching rule owns a path", () => {
  const settings = JSON.stringify({
    rules: [
      { pattern: "/services/", owner: "team", labels: ["team-approved"], accept_ticket: false },
      { pattern: "/services/payments/", owner: "payments", labels: ["payments-approved"], accept_ticket: false },
    ],
    environments: [],
    ticket_pattern: DEFAULTS.ticket_pattern,
  });
  const input = (labels: string[]) =>
    fixtureInput({ deployment: { environment: "staging" }, change: { paths: ["services/payments/api.ts"], labels } }, JSON.parse(settings));
  const p = new ChangeApproval();
  assert.equal(verdictOf(p.evaluate(input(["team-approved"]))), "hold");
  assert.equal(verdictOf(p.evaluate(input(["payments-approved"]))), "promote");
});

test("a held change names every missing approval and keeps the approved ones", () => {
  const out = new ChangeApproval().evaluate(fixtureInput({
    deployment: { environment: "production" },
    change: { paths: ["db/migrations/1.sql", "main.tf", ".github/workflows/ci.yml"], labels: ["dba-approved"] },
  }));
  assert.equal(verdictOf(out), "hold");
  const text = messages(out);
  assert.match(text, /main\.tf .*needs platform's approval: label `platform-approved` or a ticket/);
  assert.match(text, /ci\.yml .*needs security's approval/);
  assert.match(text, /approved by label `dba-approved`/);
});

test("rules that can never be approved are refused", () => {
  assert.throws(() => new ChangeApproval().validateSettings(JSON.stringify({
    rules: [{ pattern: "/x/", owner: "o", labels: [], accept_ticket: false }],
  })), /can never be approved/);
});
