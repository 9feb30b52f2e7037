// Everything a policy must not be able to do, one `mode` setting at a time.
// Each attempt throws (and the string becomes the policy's error) or is
// contained by the host (deadline, memory limit). Plain JavaScript, no SDK:
// the shape componentize-js expects, written by hand.

const MODES = {
  loop() {
    for (;;) {}
  },
  memory() {
    const hoard = [];
    for (;;) hoard.push(new Float64Array(1 << 20).fill(1));
  },
  file() {
    // No filesystem API in the runtime; a file URL is the only way to ask.
    return fetch("file:///etc/passwd");
  },
  env() {
    return process.env.PATH;
  },
  socket() {
    return new WebSocket("ws://127.0.0.1:8080/");
  },
  http() {
    return fetch("http://example.com/");
  },
  "clock-random"() {
    const values = [];
    for (let i = 0; i < 2; i++) {
      values.push(`wall ${Date.now()}`);
      values.push(`monotonic ${performance.now()}`);
      values.push(`random ${Math.random()}`);
      values.push(`crypto ${crypto.getRandomValues(new Uint32Array(2)).join(",")}`);
    }
    console.log("clock and random: " + values.join(", "));
    return { tag: "vote", val: { verdict: "promote", reasons: values.map((message) => ({ message })) } };
  },
};

function mode(settings) {
  const m = JSON.parse(settings || "{}").mode ?? "clock-random";
  if (!(m in MODES)) throw `invalid settings: \`mode\` must be one of ${Object.keys(MODES).join(", ")}`;
  return m;
}

export function describe() {
  return {
    name: "hostile-js",
    version: "0.1.0",
    summary: "tries what a policy must not do (sandbox tests)",
    metrics: [],
    defaultSettings: "{}",
  };
}

export function validateSettings(settings) {
  mode(settings);
}

export function evaluate(input) {
  try {
    const out = MODES[mode(input.settings)]();
    if (out && out.tag) return out;
    throw `got through: ${String(out)}`;
  } catch (e) {
    throw typeof e === "string" ? e : `${e && e.name}: ${e && e.message}`;
  }
}
