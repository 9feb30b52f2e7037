// Component entry point: componentize-js builds from the compiled form of
// this module. The policy itself is in approval.ts.
import { log } from "verdict:policy/host@0.1.0";
import { exportPolicy } from "../../sdk-js/src/component.js";
import { ChangeApproval } from "./approval.js";

export const { describe, validateSettings, evaluate } = exportPolicy(new ChangeApproval(), log);
