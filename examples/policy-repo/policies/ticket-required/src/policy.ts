// Component entry point: componentize-js builds from the compiled form of
// this module. The policy itself is in gate.ts.
import { log } from "verdict:policy/host@0.1.0";
import { exportPolicy } from "../vendor/verdict-sdk-js/src/component.js";
import { Gate } from "./gate.js";

export const { describe, validateSettings, evaluate } = exportPolicy(new Gate(), log);
