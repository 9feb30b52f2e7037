// Generate the TypeScript declarations of the WIT world with `jco types`.
//
// Why a wrapper: jco runs its WIT parser as a component on
// @bytecodealliance/preview2-shim, whose filesystem (0.26) starts with no
// preopened directories, so `jco types <dir>` cannot read the WIT files
// ("failed to read path"). Preopening the WIT directory (read as itself)
// before running jco's own CLI fixes that without touching jco.
//
// Usage: node wit-types.mjs <node_modules dir> <wit dir> <out dir>
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, wit, out] = process.argv.slice(2).map((p) => resolve(p));
// The shim jco-transpile loads: its own nested copy when npm kept one,
// else the hoisted one. Importing the same file gives the same module
// instance, so the preopen below is the one jco's WIT parser sees.
const candidates = [
  `${modules}/@bytecodealliance/jco-transpile/node_modules/@bytecodealliance/preview2-shim`,
  `${modules}/@bytecodealliance/preview2-shim`,
];
const shim = candidates.find((d) => existsSync(`${d}/dist/nodejs/filesystem.js`));
if (!shim) throw new Error(`no @bytecodealliance/preview2-shim under ${modules}: run npm install`);
const { _addPreopen } = await import(pathToFileURL(`${shim}/dist/nodejs/filesystem.js`).href);
_addPreopen(wit, wit);
const { guestTypes } = await import(
  pathToFileURL(`${modules}/@bytecodealliance/jco/dist/cmd/types.js`).href
);
// Guest types: the world as the policy sees it (what it exports and imports).
await guestTypes(wit, { worldName: "policy", outDir: out, quiet: true });
