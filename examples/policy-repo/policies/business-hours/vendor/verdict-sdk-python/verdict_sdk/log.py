"""The host's log sink. Inside a component, ``verdict_sdk.component`` points
it at the ``log`` import (the lines land in the decision record, capped like
everything a policy returns); natively the lines are kept in ``lines`` so a
test can look at them."""

from __future__ import annotations

from typing import Callable

#: Natively: every line logged, as ``"level: message"``.
lines: list[str] = []

_sink: Callable[[str, str], None] = lambda level, message: lines.append(f"{level}: {message}")


def _set_sink(sink: Callable[[str, str], None]) -> None:
    global _sink
    _sink = sink


def debug(message: str) -> None:
    _sink("debug", message)


def info(message: str) -> None:
    _sink("info", message)


def warn(message: str) -> None:
    _sink("warn", message)


def error(message: str) -> None:
    _sink("error", message)
