"""The bridge between a policy written against ``verdict_sdk`` and the
binding componentize-py generates from ``wit/`` at build time (the modules
``wit_world`` and ``componentize_py_types`` exist only while building the
component; natively nothing imports this module).

Every exception a policy raises becomes ``err(message)``, so a policy that
trips over anything (a denied file, a missing key) is reported by the host
as that policy's error with the exception's own words, not as a trap.
"""

from __future__ import annotations

from typing import Any

import componentize_py_types
import wit_world
from wit_world.imports import host, types

from . import Change, Deployment, Info, Input, Metric, Outcome, PolicyError, Verdict, log

_LEVELS = {
    "debug": host.Level.DEBUG,
    "info": host.Level.INFO,
    "warn": host.Level.WARN,
    "error": host.Level.ERROR,
}

_VERDICTS = {
    Verdict.PROMOTE: types.Verdict.PROMOTE,
    Verdict.HOLD: types.Verdict.HOLD,
    Verdict.ROLLBACK: types.Verdict.ROLLBACK,
    Verdict.FREEZE: types.Verdict.FREEZE,
}


def _err(e: BaseException) -> componentize_py_types.Err:
    if isinstance(e, PolicyError):
        return componentize_py_types.Err(str(e))
    return componentize_py_types.Err(f"{type(e).__name__}: {e}")


def _input(i: Any) -> Input:
    d, c = i.deployment, i.change
    return Input(
        deployment=Deployment(
            service=d.service, environment=d.environment, version=d.version,
            previous_version=d.previous_version, region=d.region, stage=d.stage,
            traffic_percent=d.traffic_percent,
        ),
        change=Change(
            commit=c.commit, author=c.author, title=c.title,
            files_changed=c.files_changed, lines_added=c.lines_added,
            lines_removed=c.lines_removed, paths=list(c.paths), labels=list(c.labels),
            ticket=c.ticket, risk=c.risk,
        ),
        metrics=[
            Metric(name=m.name, unit=m.unit, baseline=list(m.baseline),
                   canary=list(m.canary), value=m.value)
            for m in i.metrics
        ],
        now_unix_ms=i.now_unix_ms,
        settings=i.settings,
    )


def _outcome(o: Outcome) -> Any:
    if o.abstained is not None:
        return types.Outcome_Abstain(o.abstained)
    if o.verdict is None:
        raise PolicyError("the policy returned an outcome with neither a verdict nor an abstention")
    return types.Outcome_Vote(types.Decision(
        verdict=_VERDICTS[Verdict(o.verdict)],
        reasons=[
            types.Reason(message=r.message, metric=r.metric,
                         observed=None if r.observed is None else float(r.observed),
                         threshold=None if r.threshold is None else float(r.threshold))
            for r in o.reasons
        ],
    ))


def export(policy: Any) -> type:
    """The ``WitWorld`` class componentize-py looks for in ``app.py``,
    serving ``policy`` (an object with describe / validate_settings /
    evaluate)."""
    log._set_sink(lambda level, message: host.log(_LEVELS[level], message))

    class WitWorld(wit_world.WitWorld):
        def describe(self) -> Any:
            info: Info = policy.describe()
            return types.Info(name=info.name, version=info.version, summary=info.summary,
                              metrics=list(info.metrics), default_settings=info.default_settings)

        def validate_settings(self, settings: str) -> None:
            try:
                policy.validate_settings(settings)
            except Exception as e:  # every failure is the policy's err, in its words
                raise _err(e) from None

        def evaluate(self, input: Any) -> Any:
            try:
                return _outcome(policy.evaluate(_input(input)))
            except Exception as e:
                raise _err(e) from None

    return WitWorld
