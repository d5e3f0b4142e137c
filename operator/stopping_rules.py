"""Early-stopping rules: which running trials to stop, from the held-out curves the trials reported.

Pure functions of the curves (`progress.json`: step → objective value), so that the operator re-applies them
at every observation and a restarted operator decides the same; the state machine turns their verdicts into
stopped trials.

- `median_stops`, Katib's median stopping rule: a trial whose best value so far is strictly worse than the
  median of the other trials' running averages at its step, once `min_trials` others have reached that step.
- `asha_stops`, successive halving across rungs (Ray Tune's ASHA, stopping variant): a trial goes on past a
  rung only while it is in the top 1/eta (rounded up) of every trial that reached that rung.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

from mixtura_operator.api.early_stopping import DEFAULT_MIN_TRIALS, EarlyStopping

# A trial's reports, in step order: (step, value of the objective).
Curve = Sequence[tuple[int, float]]


def _better(maximize: bool) -> int:
    return 1 if maximize else -1


def median_stops(
    curves: Mapping[str, Curve],
    running: Iterable[str],
    *,
    maximize: bool,
    min_trials: int = DEFAULT_MIN_TRIALS,
    start_step: int = 0,
) -> dict[str, str]:
    """The running trials to stop, each with why. A trial is judged at its latest reported step s (from
    `start_step` on) against the others that reached s: their running averages over their reports up to s."""
    sign = _better(maximize)
    out = {}
    for tid in sorted(running):
        curve = curves.get(tid, ())
        if not curve or curve[-1][0] < max(start_step, 1):
            continue
        step = curve[-1][0]
        best = max(sign * value for _, value in curve)
        averages = [
            statistics.fmean(sign * value for at, value in theirs if at <= step)
            for other, theirs in curves.items()
            if other != tid and theirs and theirs[-1][0] >= step
        ]
        if len(averages) < min_trials:
            continue
        median = statistics.median(averages)
        if best < median:
            out[tid] = (
                f"at step {step} its best value {sign * best:.4g} is worse than {sign * median:.4g}, the median "
                f"of {len(averages)} other trials' running averages (median stopping)"
            )
    return out


def value_at(curve: Curve, rung: int) -> float | None:
    """The trial's value at a rung: its first report at or after the rung's step."""
    return next((value for step, value in curve if step >= rung), None)


def promoted(curves: Mapping[str, Curve], rung: int, eta: int, *, maximize: bool) -> list[str]:
    """The trials that go on past `rung`: the top ceil(n/eta) of the n that reached it (ties by id)."""
    sign = _better(maximize)
    reached = {tid: v for tid, curve in curves.items() if (v := value_at(curve, rung)) is not None}
    ranked = sorted(reached, key=lambda tid: (-sign * reached[tid], tid))
    return ranked[: math.ceil(len(ranked) / eta)]


def asha_stops(
    curves: Mapping[str, Curve], running: Iterable[str], *, maximize: bool, rungs: Sequence[int], eta: int
) -> dict[str, str]:
    """The running trials to stop, each with why: a trial is judged at the highest rung it reached, against
    every trial (running, finished or stopped) that reached that rung. Ray's ASHA judges a trial once, when it
    reaches the rung; re-judging until the next rung keeps the rule a function of the curves alone."""
    out = {}
    for tid in sorted(running):
        curve = curves.get(tid, ())
        reached = [rung for rung in rungs if curve and curve[-1][0] >= rung]
        if not reached:
            continue
        rung = reached[-1]
        keep = promoted(curves, rung, eta, maximize=maximize)
        if tid not in keep:
            n = sum(value_at(c, rung) is not None for c in curves.values())
            out[tid] = (
                f"at rung {rung} (steps) its value {value_at(curve, rung):.4g} is not in the top 1/{eta} of the "
                f"{n} trials that reached it (asha)"
            )
    return out


def trials_to_stop(
    settings: EarlyStopping, proxy_steps: int, curves: Mapping[str, Curve], running: Iterable[str], *, maximize: bool
) -> dict[str, str]:
    """What `settings` (spec.search.earlyStopping) says of the running trials."""
    if settings.type == "median":
        return median_stops(
            curves,
            running,
            maximize=maximize,
            min_trials=settings.min_trials_required or DEFAULT_MIN_TRIALS,
            start_step=settings.start_step or 0,
        )
    return asha_stops(curves, running, maximize=maximize, rungs=settings.rungs(proxy_steps), eta=settings.eta())
