"""`business-hours`: deploys to the listed environments only on weekdays
between `start_hour` and `end_hour` (UTC); holds them otherwise.

The decision time comes from the input (`now_unix_ms`): a policy has no clock
of its own, so a replay decides exactly as the original did.
"""
from dataclasses import dataclass, field
from datetime import datetime, timezone

from verdict_sdk import Info, Input, Outcome, PolicyError, Reason, parse_settings


@dataclass
class Settings:
    environments: list[str] = field(default_factory=lambda: ["production"])
    start_hour: int = 9
    end_hour: int = 17


def _settings(text: str) -> Settings:
    s = parse_settings(text, Settings)
    if not (0 <= s.start_hour < s.end_hour <= 24):
        raise PolicyError(
            f"start_hour ({s.start_hour}) and end_hour ({s.end_hour}) must satisfy "
            "0 <= start_hour < end_hour <= 24")
    return s


class Policy:
    def describe(self) -> Info:
        return Info("business-hours", "0.1.0",
                    "holds deploys to protected environments outside business hours"
                    ).with_default_settings(Settings())

    def validate_settings(self, settings: str) -> None:
        _settings(settings)

    def evaluate(self, input: Input) -> Outcome:
        s = _settings(input.settings)
        env = input.deployment.environment
        if env not in s.environments:
            return Outcome.abstain(f"`{env}` is not a protected environment")
        now = datetime.fromtimestamp(input.now_unix_ms / 1000, tz=timezone.utc)
        when = now.strftime("%a %H:%M UTC")
        window = f"weekdays {s.start_hour:02d}:00-{s.end_hour:02d}:00 UTC"
        if now.weekday() >= 5 or not (s.start_hour <= now.hour < s.end_hour):
            return Outcome.hold([Reason(f"{when} is outside business hours ({window})")])
        return Outcome.promote([Reason(f"{when} is within business hours ({window})")])
