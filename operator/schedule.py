"""Which proposal a search starts next and which trials run: pure, from the spec and what the store says was
proposed and has finished.

`rounds`: a proposal of `parallelTrials` trials, and the next once every one of them has finished, so a round
waits for its slowest trial. `async`: the first proposal fills the `parallelTrials` slots; afterwards every slot
that frees (a trial finished or failed) gets a proposal at once, conditioned on the trials still running (its
`pending`). Either way `maxTrials` counts the trials proposed, so a raised budget goes on after the proposals
already made; once the budget's trials have finished, `repeatTop` reruns the best k of them with new seeds.
Trial ids run on across proposals (repeats included), one proposal at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from mixtura_operator import layout
from mixtura_operator.api.mixturesearch import MixtureSearchSpec


@dataclass(frozen=True)
class Proposal:
    """`propose/<index>`: mixtures for `trials`, conditioned on the `pending` ones (running), or the mixtures of
    `repeat_of` again (one trial each, in order)."""

    index: int
    trials: tuple[str, ...]
    pending: tuple[str, ...] = ()
    repeat_of: tuple[str, ...] = ()

    @property
    def step_key(self) -> str:
        return f"propose/{self.index}"


@dataclass(frozen=True)
class Schedule:
    """The proposal due now (None: none is), and the trials proposed but not finished (their jobs run)."""

    proposal: Proposal | None
    open_trials: tuple[str, ...]
    # The index of the latest proposal, made or due.
    round: int


def proposed_trials(proposed: Mapping[int, Sequence[str]]) -> list[str]:
    """Every trial proposed so far, in proposal order."""
    return [tid for index in sorted(proposed) for tid in proposed[index]]


def next_step(
    spec: MixtureSearchSpec,
    proposed: Mapping[int, Sequence[str]],
    finished: Set[str],
    repeats: Mapping[str, str],
    best_first: Sequence[str],
) -> Schedule:
    """`proposed`: the trial ids of each proposal made; `finished`: trials succeeded or failed; `repeats`:
    repeat trial -> the trial it reruns; `best_first`: the succeeded trials, best objective first."""
    ids = proposed_trials(proposed)
    open_trials = tuple(tid for tid in ids if tid not in finished)
    index = len(proposed)
    budget = spec.budget
    left = budget.max_trials - sum(tid not in repeats for tid in ids)
    fresh = [layout.trial_id(i) for i in range(len(ids), len(ids) + max(left, 0))]
    proposal = None
    if left > 0:
        asynchronous = spec.search.schedule == "async"
        free = budget.parallel_trials - len(open_trials) if asynchronous or not open_trials else 0
        if free > 0:
            pending = open_trials if asynchronous else ()
            proposal = Proposal(index, tuple(fresh[:free]), pending=pending)
    elif not open_trials and not repeats:
        top = tuple(best_first[: spec.search.repeat_top])
        if top:
            reruns = tuple(layout.trial_id(i) for i in range(len(ids), len(ids) + len(top)))
            proposal = Proposal(index, reruns, repeat_of=top)
    return Schedule(proposal, open_trials, index if proposal else max(index - 1, 0))


def repeat_number(tid: str, repeats: Mapping[str, str]) -> int:
    """0 for a trial of the budget; n for the n-th repeat: each repeat gets its own seed."""
    return sorted(repeats).index(tid) + 1 if tid in repeats else 0
