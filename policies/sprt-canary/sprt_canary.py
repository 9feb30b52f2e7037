"""sprt-canary: Wald's sequential probability ratio test on canary error counts.

A canary is judged as soon as its traffic holds decisive evidence, and no
sooner: with few requests it holds; once the error count is clearly
compatible with the baseline's error rate it promotes; once it is clearly
compatible with a degraded rate (``degraded_ratio`` times the baseline's) it
rolls back. The error probabilities of both wrong calls are bounded by
``alpha`` (rolling back a healthy canary) and ``beta`` (promoting a degraded
one), whenever the deploy tool asks, however often: that is what a
sequential test buys over re-running a fixed-sample test at every step.

Model: each canary request fails independently with probability p.
H0: p = p0 (the baseline rate), H1: p = p1 = degraded_ratio × p0.
The log-likelihood ratio of k errors in n requests is
    LLR = k·ln(p1/p0) + (n−k)·ln((1−p1)/(1−p0)),
rollback when LLR ≥ ln((1−beta)/alpha), promote when LLR ≤ ln(beta/(1−alpha)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from verdict_sdk import Info, Input, Outcome, PolicyError, Reason, log, num, parse_settings


@dataclass
class Settings:
    #: Metric with error counts per interval (`canary`, and `baseline` for p0).
    errors_metric: str = "errors"
    #: Metric with request counts per interval, aligned with the error counts.
    requests_metric: str = "requests"
    #: p0 when set (> 0); otherwise p0 is the baseline samples' error rate.
    baseline_error_rate: float = 0.0
    #: p0 never goes below this (a baseline with no errors would make any
    #: canary error infinitely surprising).
    min_error_rate: float = 0.0001
    #: p1 = degraded_ratio × p0: the error rate that must trigger a rollback.
    degraded_ratio: float = 2.0
    #: Probability of rolling back a healthy canary.
    alpha: float = 0.05
    #: Probability of promoting a degraded canary.
    beta: float = 0.10


def settings(text: str) -> Settings:
    s = parse_settings(text, Settings)
    if not 0 < s.alpha < 0.5 or not 0 < s.beta < 0.5:
        raise PolicyError("invalid settings: `alpha` and `beta` must be between 0 and 0.5")
    if s.degraded_ratio <= 1:
        raise PolicyError("invalid settings: `degraded_ratio` must be greater than 1")
    if not 0 <= s.baseline_error_rate < 1 or not 0 < s.min_error_rate < 1:
        raise PolicyError(
            "invalid settings: `baseline_error_rate` must be in [0, 1) and `min_error_rate` in (0, 1)")
    if s.degraded_ratio * max(s.baseline_error_rate, s.min_error_rate) >= 1:
        raise PolicyError("invalid settings: `degraded_ratio` × the error rate must stay below 1")
    if not s.errors_metric or not s.requests_metric:
        raise PolicyError("invalid settings: metric names must not be empty")
    return s


def _counts(values: list[float], what: str) -> int:
    total = 0.0
    for v in values:
        if v < 0 or v != v:
            raise PolicyError(f"`{what}` has a negative or missing count ({v})")
        total += v
    return round(total)


@dataclass
class Sprt:
    p0: float
    p1: float
    llr: float
    accept: float  # the promote bound (negative)
    reject: float  # the rollback bound (positive)


def sprt(errors: int, requests: int, p0: float, s: Settings) -> Sprt:
    p1 = s.degraded_ratio * p0
    llr = errors * math.log(p1 / p0) + (requests - errors) * math.log((1 - p1) / (1 - p0))
    return Sprt(p0=p0, p1=p1, llr=llr,
                accept=math.log(s.beta / (1 - s.alpha)),
                reject=math.log((1 - s.beta) / s.alpha))


class SprtCanary:
    def describe(self) -> Info:
        s = Settings()
        return Info(
            "sprt-canary", "0.1.0",
            "sequential probability ratio test on canary error counts: promote or roll back "
            "as soon as the evidence is decisive, hold before",
            metrics=[s.errors_metric, s.requests_metric],
        ).with_default_settings(s)

    def validate_settings(self, text: str) -> None:
        settings(text)

    def evaluate(self, input: Input) -> Outcome:
        s = settings(input.settings)
        errors_m = input.metric(s.errors_metric)
        requests_m = input.metric(s.requests_metric)
        if errors_m is None or requests_m is None or not requests_m.canary:
            return Outcome.abstain(
                f"needs canary samples of `{s.errors_metric}` and `{s.requests_metric}`")
        if len(errors_m.canary) != len(requests_m.canary):
            raise PolicyError(
                f"`{s.errors_metric}` has {len(errors_m.canary)} canary samples but "
                f"`{s.requests_metric}` has {len(requests_m.canary)}; they must be aligned")
        k = _counts(errors_m.canary, s.errors_metric)
        n = _counts(requests_m.canary, s.requests_metric)
        if k > n:
            raise PolicyError(f"{k} canary errors in only {n} requests")
        p0, source = self._baseline(s, errors_m.baseline, requests_m.baseline)
        if p0 is None:
            return Outcome.abstain(
                "no baseline error rate: send baseline samples of both metrics or set "
                "`baseline_error_rate`")
        t = sprt(k, n, p0, s)
        rate = k / n if n else 0.0
        log.debug(f"k={k} n={n} p0={p0} p1={t.p1} llr={t.llr}")
        evidence = (f"log-likelihood ratio {num(t.llr)} (promote at ≤ {num(t.accept)}, "
                    f"roll back at ≥ {num(t.reject)})")
        observed = Reason(
            f"canary error rate {num(rate * 100)}% ({k} errors in {n} requests) against "
            f"{source} {num(p0 * 100)}%; degraded means {num(t.p1 * 100)}%"
        ).on_metric(s.errors_metric, rate, t.p1)
        if t.llr >= t.reject:
            return Outcome.rollback([
                Reason(f"the canary's errors are decisively above the baseline: {evidence}"),
                observed])
        if t.llr <= t.accept:
            return Outcome.promote([
                Reason(f"the canary's errors are decisively compatible with the baseline: {evidence}"),
                observed])
        return Outcome.hold([
            Reason(f"not enough evidence yet: {evidence}"), observed])

    @staticmethod
    def _baseline(s: Settings, errors: list[float], requests: list[float]):
        if s.baseline_error_rate > 0:
            return max(s.baseline_error_rate, s.min_error_rate), "the configured rate"
        if not requests or len(errors) != len(requests):
            return None, ""
        n = _counts(requests, s.requests_metric)
        if n == 0:
            return None, ""
        return max(_counts(errors, s.errors_metric) / n, s.min_error_rate), "the baseline's"
