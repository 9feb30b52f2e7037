from pathlib import Path

import pytest

from verdict_sdk import Input, PolicyError, Verdict
from verdict_sdk.testing import run_fixtures

from business_hours import Policy

SUNDAY_NOON_MS = 1774785600000  # 2026-03-29T12:00:00Z


def test_weekends_hold():
    i = Input()
    i.deployment.environment = "production"
    i.now_unix_ms = SUNDAY_NOON_MS
    assert Policy().evaluate(i).verdict is Verdict.HOLD


def test_an_empty_window_is_refused():
    with pytest.raises(PolicyError, match="start_hour"):
        Policy().validate_settings('{"start_hour": 18, "end_hour": 9}')


def test_fixtures_pass_natively():
    count, failures = run_fixtures(Policy(), Path(__file__).parent.parent / "fixtures")
    assert count == 4 and failures == []
