// The few Node.js APIs the native fixture runner and the tests use, declared
// here so the SDK needs no @types/node (it runs inside a component, where
// Node does not exist; only `testing` and the tests run under Node).
declare module "node:fs" {
  export function readFileSync(path: string, encoding: "utf8"): string;
  export function readdirSync(path: string): string[];
}
declare module "node:path" {
  export function join(...parts: string[]): string;
}
declare module "node:test" {
  export function test(name: string, fn: () => void | Promise<void>): void;
}
declare module "node:assert/strict" {
  const assert: {
    (value: unknown, message?: string): void;
    equal(a: unknown, b: unknown, message?: string): void;
    deepEqual(a: unknown, b: unknown, message?: string): void;
    ok(value: unknown, message?: string): void;
    match(value: string, re: RegExp, message?: string): void;
    throws(fn: () => unknown, expected?: RegExp | object, message?: string): void;
  };
  export default assert;
}

// Node 20.11+: the directory of the running module.
interface ImportMeta {
  dirname?: string;
}
