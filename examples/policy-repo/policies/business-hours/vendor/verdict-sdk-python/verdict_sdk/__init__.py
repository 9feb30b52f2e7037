"""Write a Verdict deployment policy in Python.

A policy is a class with three methods, the exports of the WIT world in
``wit/policy.wit``::

    from verdict_sdk import Info, Input, Outcome, Reason, PolicyError

    class MyPolicy:
        def describe(self) -> Info: ...
        def validate_settings(self, settings: str) -> None: ...  # raise PolicyError
        def evaluate(self, input: Input) -> Outcome: ...         # raise PolicyError

and the file componentize-py builds (``app.py``) exports it with::

    from verdict_sdk.component import export
    WitWorld = export(MyPolicy())

The types below mirror the WIT records as plain dataclasses, so policy logic
is tested with plain ``pytest``, without Wasm: ``verdict_sdk.testing`` even
runs the policy's ``fixtures/*.json`` natively. Inside the component,
``verdict_sdk.component`` converts between these and the generated binding
(the only place that touches it; it is generated at build time).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar

from . import log, stats  # noqa: F401  (re-exported modules)

__all__ = [
    "Verdict", "Deployment", "Change", "Metric", "Input", "Reason", "Outcome",
    "Info", "PolicyError", "parse_settings", "log", "stats", "num",
]


class PolicyError(Exception):
    """Raised by a policy to return ``err(message)``: refused settings, or an
    evaluation that cannot decide. The host records it as the policy's error."""


class Verdict(str, enum.Enum):
    PROMOTE = "promote"
    HOLD = "hold"
    ROLLBACK = "rollback"
    FREEZE = "freeze"

    @property
    def severity(self) -> int:
        """promote < hold < rollback < freeze, as the host combines votes."""
        return ["promote", "hold", "rollback", "freeze"].index(self.value)

    def max(self, other: "Verdict") -> "Verdict":
        return self if self.severity >= other.severity else other


@dataclass
class Deployment:
    service: str = ""
    environment: str = ""
    version: str = ""
    previous_version: Optional[str] = None
    region: Optional[str] = None
    stage: Optional[str] = None
    traffic_percent: Optional[float] = None


@dataclass
class Change:
    commit: Optional[str] = None
    author: Optional[str] = None
    title: Optional[str] = None
    files_changed: int = 0
    lines_added: int = 0
    lines_removed: int = 0
    paths: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    ticket: Optional[str] = None
    risk: Optional[str] = None


@dataclass
class Metric:
    """Baseline (control) and canary samples, or one value (e.g. a burn rate)."""
    name: str
    unit: Optional[str] = None
    baseline: list[float] = field(default_factory=list)
    canary: list[float] = field(default_factory=list)
    value: Optional[float] = None


@dataclass
class Input:
    deployment: Deployment = field(default_factory=Deployment)
    change: Change = field(default_factory=Change)
    metrics: list[Metric] = field(default_factory=list)
    #: Decision time, ms since the Unix epoch (UTC).
    now_unix_ms: int = 0
    #: The binding's settings, a JSON document.
    settings: str = "{}"

    def metric(self, name: str) -> Optional[Metric]:
        """The metric called ``name``, if the request carries it."""
        return next((m for m in self.metrics if m.name == name), None)

    def has_label(self, label: str) -> bool:
        """Whether any label of the change equals ``label`` (case-insensitive)."""
        return any(l.lower() == label.lower() for l in self.change.labels)


@dataclass
class Reason:
    message: str
    metric: Optional[str] = None
    observed: Optional[float] = None
    threshold: Optional[float] = None

    def on_metric(self, metric: str, observed: float,
                  threshold: Optional[float] = None) -> "Reason":
        """The same reason, tied to a metric with its observed value and threshold."""
        return dataclasses.replace(self, metric=metric, observed=observed,
                                   threshold=threshold)


#: Limits the host enforces by default (64 reasons of 4096 bytes); the SDK
#: keeps well within them so a long list never turns a vote into an error.
MAX_REASONS = 32
MAX_MESSAGE = 1024


def _bounded(reasons: list[Reason]) -> list[Reason]:
    out = []
    for r in reasons:
        msg = r.message
        if len(msg.encode()) > MAX_MESSAGE:
            msg = msg.encode()[: MAX_MESSAGE - 3].decode(errors="ignore") + "..."
        out.append(dataclasses.replace(r, message=msg))
    if len(out) > MAX_REASONS:
        rest = len(out) - (MAX_REASONS - 1)
        out = out[: MAX_REASONS - 1] + [Reason(f"... and {rest} more")]
    return out


@dataclass
class Outcome:
    """A vote (a verdict with reasons) or an abstention (why not)."""
    verdict: Optional[Verdict] = None
    reasons: list[Reason] = field(default_factory=list)
    abstained: Optional[str] = None

    @staticmethod
    def vote(verdict: Verdict, reasons: list[Reason]) -> "Outcome":
        return Outcome(verdict=Verdict(verdict), reasons=_bounded(list(reasons)))

    @staticmethod
    def promote(reasons: list[Reason]) -> "Outcome":
        return Outcome.vote(Verdict.PROMOTE, reasons)

    @staticmethod
    def hold(reasons: list[Reason]) -> "Outcome":
        return Outcome.vote(Verdict.HOLD, reasons)

    @staticmethod
    def rollback(reasons: list[Reason]) -> "Outcome":
        return Outcome.vote(Verdict.ROLLBACK, reasons)

    @staticmethod
    def freeze(reasons: list[Reason]) -> "Outcome":
        return Outcome.vote(Verdict.FREEZE, reasons)

    @staticmethod
    def abstain(why: str) -> "Outcome":
        return Outcome(abstained=why)

    def messages(self) -> str:
        if self.abstained is not None:
            return self.abstained
        return " | ".join(r.message for r in self.reasons)


@dataclass
class Info:
    name: str
    version: str
    summary: str
    #: Metric names the policy reads.
    metrics: list[str] = field(default_factory=list)
    #: Default settings, a JSON document.
    default_settings: str = "{}"

    def with_default_settings(self, defaults: Any) -> "Info":
        """Default settings from a settings dataclass instance (or a dict)."""
        doc = dataclasses.asdict(defaults) if dataclasses.is_dataclass(defaults) else defaults
        return dataclasses.replace(self, default_settings=json.dumps(doc, sort_keys=True))


S = TypeVar("S")


def parse_settings(settings: str, cls: type[S]) -> S:
    """Parse the binding's settings JSON into the dataclass ``cls``, whose
    field defaults are the policy's defaults.

    Like the Rust SDK's ``parse_settings``: an empty document is ``{}``,
    unknown fields are refused (a typo must not silently keep a default), and
    a value of the wrong type is refused naming the field. Errors are
    :class:`PolicyError` worded for the operator who wrote the settings.
    """
    text = settings.strip() or "{}"
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise PolicyError(f"invalid settings: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise PolicyError("invalid settings: expected a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise PolicyError(
            f"invalid settings: unknown field `{unknown[0]}`, expected one of "
            + ", ".join(f"`{n}`" for n in fields)
        )
    defaults = cls()
    for name, value in doc.items():
        want = getattr(defaults, name)
        if not _same_kind(want, value):
            raise PolicyError(
                f"invalid settings: `{name}` must be {_kind(want)}, got {json.dumps(value)}"
            )
    return cls(**doc)


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "true or false"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return "null"


def _same_kind(default: Any, value: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, int):
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return type(default) is type(value)


def num(x: float) -> str:
    """Numbers for humans: about four significant digits, no trailing zeros."""
    if x == 0 or x != x or x in (float("inf"), float("-inf")):
        return str(x)
    import math
    decimals = max(0, min(12, 3 - math.floor(math.log10(abs(x)))))
    s = f"{x:.{decimals}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s
