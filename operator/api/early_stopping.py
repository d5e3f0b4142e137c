"""spec.search.earlyStopping: stop proxy trials whose held-out curve says they will not win (the rules are in
`mixtura_operator.stopping_rules`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mixtura_operator.api.base import ApiModel, Rule

MEDIAN_FIELDS = ("minTrialsRequired", "startStep")
ASHA_FIELDS = ("minResource", "reductionFactor")
# Katib's median stopping rule waits for this many other trials at a step (its min_trials_required).
DEFAULT_MIN_TRIALS = 3
DEFAULT_REDUCTION_FACTOR = 3
# Reports per proxy run when evalEvery is not given and the rule is median.
MEDIAN_REPORTS = 10


def _only_for(kind: str, fields: tuple[str, ...]) -> Rule:
    absent = " && ".join(f"!has(self.{name})" for name in fields)
    return Rule(
        cel=f"self.type == '{kind}' || ({absent})",
        message=f"{', '.join(fields)} are settings of type {kind}",
        field=f".{fields[0]}",
        check=lambda m: m.type == kind or all(getattr(m, _python(name)) is None for name in fields),
    )


def _python(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


class EarlyStopping(ApiModel):
    """median: Katib's median stopping rule; asha: asynchronous successive halving (Ray Tune's stopping
    variant). A stopped trial is recorded as stopped, not failed, and frees its slot."""

    type: Literal["median", "asha"]
    eval_every: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Steps between the held-out evaluations the built-in trainer writes to progress.json; "
        "default: minResource for asha, a tenth of proxySteps for median.",
    )
    min_trials_required: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description=f"median: other trials that must have reported at a step before a trial is judged there "
        f"(default {DEFAULT_MIN_TRIALS}).",
    )
    start_step: int | None = Field(
        default=None, ge=0, le=1_000_000, description="median: no trial is stopped before this step (default 0)."
    )
    min_resource: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="asha: the first rung, in proxy steps; the rungs are minResource x reductionFactor^k below "
        "proxySteps (default: a ninth of proxySteps).",
    )
    reduction_factor: int | None = Field(
        default=None,
        ge=2,
        le=64,
        description=f"asha: eta; at each rung only the top 1/eta of the trials that reached it go on "
        f"(default {DEFAULT_REDUCTION_FACTOR}).",
    )

    rules = (_only_for("median", MEDIAN_FIELDS), _only_for("asha", ASHA_FIELDS))

    def first_rung(self, proxy_steps: int) -> int:
        return self.min_resource or max(1, proxy_steps // 9)

    def eta(self) -> int:
        return self.reduction_factor or DEFAULT_REDUCTION_FACTOR

    def rungs(self, proxy_steps: int) -> list[int]:
        """asha's rungs: the steps at which trials are compared, below the full budget."""
        out, rung = [], self.first_rung(proxy_steps)
        while rung < proxy_steps:
            out.append(rung)
            rung *= self.eta()
        return out

    def evaluation_interval(self, proxy_steps: int) -> int:
        """Steps between the built-in trainer's progress reports."""
        if self.eval_every is not None:
            return self.eval_every
        if self.type == "asha":
            return self.first_rung(proxy_steps)
        return max(1, proxy_steps // MEDIAN_REPORTS)
