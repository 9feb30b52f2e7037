import json
import math
from pathlib import Path

import pytest

from sprt_canary import Settings, SprtCanary, sprt
from verdict_sdk import Input, Metric, PolicyError, Verdict
from verdict_sdk.testing import run_fixtures

HERE = Path(__file__).parent.parent


def decide(errors, requests, base_errors=(10,), base_requests=(10000,), settings=None):
    i = Input(metrics=[Metric("errors", canary=list(errors), baseline=list(base_errors)),
                       Metric("requests", canary=list(requests), baseline=list(base_requests))],
              settings=json.dumps(settings or {}))
    return SprtCanary().evaluate(i)


def test_every_fixture_passes_natively():
    count, failures = run_fixtures(SprtCanary(), HERE / "fixtures")
    assert count >= 8
    assert failures == []


def test_the_llr_is_walds_for_bernoulli_errors():
    t = sprt(20, 10000, 0.001, Settings())
    expected = 20 * math.log(2) + 9980 * math.log(0.998 / 0.999)
    assert t.llr == pytest.approx(expected)
    assert t.reject == pytest.approx(math.log(0.9 / 0.05))
    assert t.accept == pytest.approx(math.log(0.1 / 0.95))


def test_evidence_accumulates_from_hold_to_a_decision():
    # The same 0.1% rate: held on little traffic, promoted on enough.
    assert decide([1], [1000]).verdict is Verdict.HOLD
    assert decide([10], [10000]).verdict is Verdict.PROMOTE
    # A tripled rate is rolled back sooner than a doubled one needs.
    assert decide([9], [3000]).verdict is Verdict.ROLLBACK
    assert decide([6], [3000]).verdict is Verdict.HOLD


def test_the_rollback_reason_carries_the_metric_observed_and_threshold():
    out = decide([30], [10000])
    r = next(r for r in out.reasons if r.metric)
    assert (r.metric, r.observed, r.threshold) == ("errors", 0.003, pytest.approx(0.002))


def test_a_clean_baseline_is_floored_at_min_error_rate():
    out = decide([0], [50000], base_errors=[0], base_requests=[100000])
    assert out.verdict is Verdict.PROMOTE
    assert "0.01%" in out.messages()


@pytest.mark.parametrize("errors,requests,needle", [
    ([1, 2], [100], "must be aligned"),
    ([-1], [100], "negative"),
    ([200], [100], "200 canary errors in only 100 requests"),
])
def test_inconsistent_counts_are_the_policys_error(errors, requests, needle):
    with pytest.raises(PolicyError) as e:
        decide(errors, requests)
    assert needle in str(e.value)


def test_settings_that_make_no_test_are_refused():
    p = SprtCanary()
    for bad in ({"degraded_ratio": 1}, {"beta": 0}, {"baseline_error_rate": 0.6}):
        with pytest.raises(PolicyError):
            p.validate_settings(json.dumps(bad))
    p.validate_settings(p.describe().default_settings)
