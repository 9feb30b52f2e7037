/** Numeric helpers policies share: pure functions of their input (no clock,
 * no randomness), so decisions replay exactly; the same definitions as the
 * Rust and Python SDKs. */

/** Arithmetic mean; `undefined` for no samples. */
export function mean(xs: ArrayLike<number>): number | undefined {
  if (xs.length === 0) return undefined;
  let sum = 0;
  for (let i = 0; i < xs.length; i++) sum += xs[i];
  return sum / xs.length;
}

/** Quantile `q` in [0, 1], linear interpolation between order statistics
 * (the "type 7" definition of R and numpy); NaNs are ignored. */
export function quantile(xs: ArrayLike<number>, q: number): number | undefined {
  if (!(q >= 0 && q <= 1)) return undefined;
  const v = Array.from(xs).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const pos = q * (v.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

/** Complementary error function (Numerical Recipes' erfcc, |error| < 1.2e-7). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
        t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Standard normal cumulative distribution function. */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}
