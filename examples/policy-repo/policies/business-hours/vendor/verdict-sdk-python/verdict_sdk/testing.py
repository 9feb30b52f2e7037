"""Run a policy's ``fixtures/*.json`` natively (no Wasm), with the same
fixture format ``verdict policy test`` reads:

    {"description": "...", "input": {<body of POST /v1/decisions>},
     "settings": {...}, "expect": "promote|hold|rollback|freeze|abstain|error",
     "reason_contains": "..."}

so ``pytest`` checks the logic against the very fixtures the real sandbox
runs. A fixture without ``input.time`` is decided at 2026-01-01T00:00:00Z,
as ``verdict policy test`` does.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from . import Change, Deployment, Input, Metric, PolicyError

DEFAULT_FIXTURE_TIME = "2026-01-01T00:00:00Z"


def unix_ms(time: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 timestamp."""
    return int(datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp() * 1000)


def fixture_input(doc: dict, settings: Optional[dict] = None) -> Input:
    """The policy's input for a decision request body (a fixture's ``input``)."""
    d, c = doc.get("deployment", {}), doc.get("change", {})
    known_c = {k: v for k, v in c.items() if k in Change.__dataclass_fields__}
    return Input(
        deployment=Deployment(**{k: v for k, v in d.items() if k in Deployment.__dataclass_fields__}),
        change=Change(**known_c),
        metrics=[
            Metric(name=m["name"], unit=m.get("unit"),
                   baseline=[x for x in (m.get("baseline") or []) if x is not None],
                   canary=[x for x in (m.get("canary") or []) if x is not None],
                   value=m.get("value"))
            for m in doc.get("metrics", [])
        ],
        now_unix_ms=unix_ms(doc.get("time", DEFAULT_FIXTURE_TIME)),
        settings=json.dumps(settings if settings is not None else {}),
    )


def check(policy: Any, fixture: dict) -> Optional[str]:
    """``None`` when the fixture passes, else what went wrong."""
    settings = json.dumps(fixture.get("settings") or {})
    want = fixture["expect"]
    contains = fixture.get("reason_contains")
    try:
        policy.validate_settings(settings)
    except PolicyError as e:
        if want != "error":
            return f"settings rejected: {e}"
        return None if not contains or contains in str(e) else f"error `{e}` lacks `{contains}`"
    if want == "error":
        return "expected the settings to be rejected, but they were accepted"
    out = policy.evaluate(fixture_input(fixture["input"], fixture.get("settings") or {}))
    got = "abstain" if out.abstained is not None else out.verdict.value
    if got != want:
        return f"expected {want}, got {got}: {out.messages()}"
    if contains and contains not in out.messages():
        return f"no reason contains `{contains}`; reasons were: {out.messages()}"
    return None


def run_fixtures(policy: Any, directory: str | Path) -> tuple[int, list[str]]:
    """(fixtures run, failures as "file: what went wrong")."""
    files = sorted(Path(directory).glob("*.json"))
    failures = []
    for f in files:
        problem = check(policy, json.loads(f.read_text()))
        if problem:
            failures.append(f"{f.name}: {problem}")
    return len(files), failures
