"""Numeric helpers policies share. Pure functions of their input (no clock,
no randomness), so decisions replay exactly; the same definitions as the
Rust SDK's ``stats`` module."""

from __future__ import annotations

import math
from typing import Optional, Sequence


def mean(xs: Sequence[float]) -> Optional[float]:
    """Arithmetic mean; ``None`` for no samples."""
    return sum(xs) / len(xs) if xs else None


def quantile(xs: Sequence[float], q: float) -> Optional[float]:
    """Quantile ``q`` in [0, 1] with linear interpolation between order
    statistics (the "type 7" definition of R and numpy); NaNs are ignored."""
    if not 0.0 <= q <= 1.0:
        return None
    v = sorted(x for x in xs if not math.isnan(x))
    if not v:
        return None
    pos = q * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def normal_cdf(z: float) -> float:
    """Standard normal cumulative distribution function."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))
