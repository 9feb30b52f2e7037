#!/usr/bin/env python3
"""Reference numbers for canary-judge, computed with scipy (never run by tests).

For each metric of each fixture (and for the unit-test data sets below) this
prints scipy's Mann-Whitney U and two-sided asymptotic p-value, the
Hodges-Lehmann estimate (median of pairwise differences x - y, x = canary) and
the confidence interval two ways:
  * "closed": order statistics of the pairwise differences at rank
    k = ceil(N/2 - 0.5 - z*sigma) (what src/mannwhitney.rs computes);
  * "r-root": a literal port of R's asymptotic wilcox.test interval (root of
    the standardized, continuity-corrected statistic of (x - d, y)), solved
    with scipy.optimize.brentq. The two must agree.

Usage: python3 scripts/reference.py [fixtures-dir]   (pip install scipy)
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import optimize, stats


def clean(values, nan_strategy="remove"):
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if nan_strategy == "replace":
                out.append(0.0)
            continue
        if math.isinf(v):
            continue
        out.append(float(v))
    return np.array(out)


def r_root_interval(x, y, conf):
    """R's stats:::wilcox.test.default asymptotic two-sample interval."""
    nx, ny = len(x), len(y)

    def wdiff(d, zq):
        dr = np.concatenate([x - d, y])
        ranks = stats.rankdata(dr)
        _, counts = np.unique(dr, return_counts=True)
        dz = ranks[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
        corr = np.sign(dz) * 0.5
        sigma = math.sqrt((nx * ny / 12) * ((nx + ny + 1) - (counts**3 - counts).sum()
                                            / ((nx + ny) * (nx + ny - 1))))
        return (dz - corr) / sigma - zq

    lo, hi = x.min() - y.max(), x.max() - y.min()

    def root(zq):
        fl, fu = wdiff(lo, zq), wdiff(hi, zq)
        if fl <= 0:
            return lo
        if fu >= 0:
            return hi
        return optimize.brentq(wdiff, lo, hi, args=(zq,), xtol=1e-12)

    z = stats.norm.ppf(1 - (1 - conf) / 2)
    return root(z), root(-z)


def closed_interval(x, y, conf):
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    n = len(diffs)
    _, cx = np.unique(x, return_counts=True)
    _, cy = np.unique(y, return_counts=True)
    ties = (cx**3 - cx).sum() + (cy**3 - cy).sum()
    nx, ny = len(x), len(y)
    sigma = math.sqrt(nx * ny / 12 * ((nx + ny + 1) - ties / ((nx + ny) * (nx + ny - 1))))
    z = stats.norm.ppf(1 - (1 - conf) / 2)
    k = max(1, min(n, math.ceil(n / 2 - 0.5 - z * sigma)))
    return diffs[k - 1], diffs[n - k]


def report(label, x, y, conf=0.98):
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0 or len(y) == 0:
        print(f"{label}: no data (canary {len(x)}, baseline {len(y)})")
        return
    if len(np.unique(np.concatenate([x, y]))) == 1:
        print(f"{label}: single distinct value")
        return
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic",
                             use_continuity=True)
    hl = np.median(np.subtract.outer(x, y))
    cl = closed_interval(x, y, conf)
    rr = r_root_interval(x, y, conf)
    ratio = x.mean() / y.mean() if y.mean() != 0 else float("inf")
    print(f"{label}: n_canary={len(x)} n_baseline={len(y)} U={float(res.statistic)!r} "
          f"p={float(res.pvalue)!r} hl={float(hl)!r} ci_closed=[{float(cl[0])!r}, {float(cl[1])!r}] "
          f"ci_r_root=[{float(rr[0])!r}, {float(rr[1])!r}] mean_ratio={float(ratio)!r}")
    assert abs(cl[0] - rr[0]) < 1e-9 and abs(cl[1] - rr[1]) < 1e-9, "interval methods disagree"


# Data sets used by src/mannwhitney_tests.rs (x = canary, y = baseline).
UNIT = {
    "kayenta_small_95": ([10, 20, 30, 40], [1, 2, 3, 4], 0.95),
    "latency_shift": (
        [131.2, 122.5, 135.9, 140.1, 129.7, 133.3, 138.8, 119.0, 136.4, 131.9,
         142.6, 130.0, 134.7, 137.2, 129.1, 139.5, 132.8, 136.0, 128.9, 141.3],
        [120.4, 118.9, 125.3, 122.7, 119.6, 124.1, 121.8, 117.5, 126.2, 123.0,
         120.9, 122.2, 118.1, 125.8, 121.1, 124.6, 119.9, 123.7, 120.2, 122.9],
        0.98),
    "ties_heavy": (
        [101, 102, 102, 103, 103, 103, 104, 104, 105, 102, 103, 104, 103, 102, 105,
         103, 104, 102, 103, 104, 103, 105, 102, 104, 103],
        [100, 101, 101, 102, 102, 102, 103, 103, 101, 102, 100, 102, 103, 101, 102,
         102, 101, 103, 102, 101, 102, 100, 102, 103, 101],
        0.98),
    "no_shift_unequal": (
        [0.51, 0.47, 0.55, 0.49, 0.53, 0.50, 0.46, 0.52, 0.48, 0.54, 0.50, 0.51],
        [0.50, 0.52, 0.47, 0.49, 0.55, 0.51, 0.48, 0.53, 0.46, 0.50, 0.52, 0.49,
         0.51, 0.54, 0.47, 0.50, 0.53, 0.48],
        0.98),
}


def main():
    for label, (x, y, conf) in UNIT.items():
        report(f"unit/{label}", x, y, conf)
    fixtures = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "fixtures")
    for path in sorted(fixtures.glob("*.json")):
        doc = json.loads(path.read_text())
        settings = doc.get("settings") or {}
        conf = settings.get("confidence", 0.98)
        by_name = {m["name"]: m for m in settings.get("metrics", [])}
        for m in doc["input"].get("metrics", []):
            nan = by_name.get(m["name"], {}).get("nan_strategy", "remove")
            x = clean(m.get("canary", []), nan)
            y = clean(m.get("baseline", []), nan)
            report(f"{path.name}/{m['name']}", x, y, conf)


if __name__ == "__main__":
    main()
