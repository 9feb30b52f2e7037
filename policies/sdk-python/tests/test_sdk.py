import json
from dataclasses import dataclass, field

import pytest

from verdict_sdk import (Info, Input, Metric, Outcome, PolicyError, Reason, Verdict, log,
                         num, parse_settings, stats)
from verdict_sdk.testing import check, fixture_input, unix_ms


@dataclass
class Settings:
    threshold: float = 0.5
    count: int = 3
    enabled: bool = True
    labels: list = field(default_factory=list)


def test_settings_default_when_empty_and_override_when_given():
    assert parse_settings("", Settings) == Settings()
    s = parse_settings('{"threshold": 2, "labels": ["a"]}', Settings)
    assert s.threshold == 2 and s.labels == ["a"] and s.count == 3


@pytest.mark.parametrize("doc,needle", [
    ('{"treshold": 1}', "unknown field `treshold`"),
    ('{"threshold": "high"}', "`threshold` must be a number"),
    ('{"enabled": 1}', "`enabled` must be true or false"),
    ('{"count": 1.5}', "`count` must be a number"),
    ('[1]', "expected a JSON object"),
    ('{nope', "not JSON"),
])
def test_bad_settings_are_refused_naming_the_problem(doc, needle):
    with pytest.raises(PolicyError) as e:
        parse_settings(doc, Settings)
    assert needle in str(e.value)
    assert str(e.value).startswith("invalid settings")


def test_stats_match_the_rust_sdk_definitions():
    assert stats.mean([]) is None
    assert stats.mean([1, 2, 3, 6]) == 3
    assert stats.quantile([1, 2, 3, 4], 0.5) == 2.5
    assert stats.quantile([4, 1, float("nan"), 2, 3], 0.25) == 1.75
    assert stats.quantile([1], 1.5) is None
    assert stats.normal_cdf(0) == 0.5
    assert abs(stats.normal_cdf(1.959963984540054) - 0.975) < 1e-12


def test_metric_lookup_and_labels():
    i = Input(metrics=[Metric("errors", canary=[1.0])])
    i.change.labels = ["Approved"]
    assert i.metric("errors").canary == [1.0]
    assert i.metric("latency") is None
    assert i.has_label("approved") and not i.has_label("hotfix")


def test_reasons_carry_metric_observed_threshold_and_are_bounded():
    r = Reason("too many errors").on_metric("errors", 12, 10)
    assert (r.metric, r.observed, r.threshold) == ("errors", 12, 10)
    many = Outcome.hold([Reason("x" * 5000)] * 100)
    assert len(many.reasons) == 32
    assert many.reasons[-1].message == "... and 69 more"
    assert len(many.reasons[0].message.encode()) <= 1024
    assert Outcome.abstain("no data").messages() == "no data"


def test_verdict_severity_orders_like_the_host():
    assert Verdict.HOLD.max(Verdict.PROMOTE) is Verdict.HOLD
    assert Verdict.ROLLBACK.max(Verdict.FREEZE) is Verdict.FREEZE
    assert Verdict("rollback") is Verdict.ROLLBACK


def test_info_default_settings_from_a_dataclass():
    info = Info("p", "1", "s").with_default_settings(Settings())
    assert json.loads(info.default_settings)["threshold"] == 0.5


def test_num_is_readable():
    assert num(0.012345) == "0.01235"
    assert num(1234.5) == "1234"
    assert num(2.0) == "2"


def test_log_lines_are_kept_natively():
    log.lines.clear()
    log.warn("careful")
    assert log.lines == ["warn: careful"]


def test_fixture_input_and_check_follow_verdict_policy_test():
    doc = {"deployment": {"service": "a", "environment": "prod"},
           "change": {"labels": ["x"], "lines_added": 3},
           "metrics": [{"name": "m", "baseline": [1, None], "canary": [2]}]}
    i = fixture_input(doc, {"k": 1})
    assert i.now_unix_ms == unix_ms("2026-01-01T00:00:00Z") == 1767225600000
    assert i.metrics[0].baseline == [1] and json.loads(i.settings) == {"k": 1}

    class Lines:
        def validate_settings(self, s):
            parse_settings(s, Settings)

        def evaluate(self, input):
            return Outcome.hold([Reason(f"{input.change.lines_added} lines")])

    assert check(Lines(), {"input": doc, "expect": "hold", "reason_contains": "3 lines"}) is None
    assert "expected promote" in check(Lines(), {"input": doc, "expect": "promote"})
    assert check(Lines(), {"input": doc, "settings": {"bad": 1}, "expect": "error",
                           "reason_contains": "unknown field"}) is None
