/**
 * The bridge between a policy written against this SDK and the exports
 * componentize-js expects. The entry module of a policy is:
 *
 *   import { log } from "verdict:policy/host@0.1.0";
 *   import { exportPolicy } from "<sdk>/src/component.js";
 *   export const { describe, validateSettings, evaluate } = exportPolicy(new MyPolicy(), log);
 *
 * componentize-js turns a thrown value into the `err` of a `result`: every
 * failure (a PolicyError, or anything else the policy trips over, such as a
 * denied file or socket) is thrown as a string in the policy's own words, so
 * the host records it as that policy's error instead of a trap.
 */
import type { Policy, Input, Outcome, Info } from "./index.js";
import { log } from "./index.js";

type HostLog = (level: "debug" | "info" | "warn" | "error", message: string) => void;

function words(e: unknown): string {
  if (e instanceof Error) {
    return e.constructor === Error || e.name === "PolicyError" || e.constructor.name === "PolicyError"
      ? e.message
      : `${e.name}: ${e.message}`;
  }
  return String(e);
}

export function exportPolicy(policy: Policy, hostLog: HostLog) {
  log.sink = (level, message) => hostLog(level as Parameters<HostLog>[0], message);
  return {
    describe(): Info {
      return policy.describe();
    },
    validateSettings(settings: string): void {
      try {
        policy.validateSettings(settings);
      } catch (e) {
        throw words(e);
      }
    },
    evaluate(input: Input): Outcome {
      try {
        return policy.evaluate(input);
      } catch (e) {
        throw words(e);
      }
    },
  };
}
