"""What a step's job runs: the jobs CLI, or for trials and the final training the user's trainer (spec.trainer),
preceded for the final training by the jobs' `final-pick`, which writes the mixture the trainer reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mixtura_operator import trainer_contract
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.reconcile import CreateJob


@dataclass(frozen=True)
class Command:
    """One container (or local process): its argv, the variables it adds, and its image (None: the jobs image)."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    image: str | None = None


def jobs_command(step: str, search_uri: str, *args: str, launcher: Sequence[str] = ()) -> list[str]:
    """`python -m mixtura_jobs <step> ...`, or under `launcher` (launch.torchrun) `<launcher> -m mixtura_jobs ...`."""
    head = [*launcher, "-m"] if launcher else ["python", "-m"]
    return [*head, "mixtura_jobs", step, "--search-uri", search_uri, *args]


def step_commands(
    search: MixtureSearch, job: CreateJob, search_uri: str, launcher: Sequence[str] = ()
) -> list[Command]:
    """The commands of a step, run one after the other; the step succeeds when the last one does. `launcher`
    starts the built-in training's processes (torchrun); a user's trainer runs as written, its own launcher."""
    trainer = trainer_contract.trainer_for(search.spec, job.step_key)
    if trainer is None:
        return [Command(job.step, jobs_command(job.step, search_uri, *job.args, launcher=launcher))]
    # The contract's variables win over the user's: they say which run this is.
    repeat = int(job.option("--repeat") or 0)
    env = {**trainer.env, **trainer_contract.trainer_env(search.spec, job.step_key, search_uri, repeat)}
    run = Command("trainer", [*trainer.command, *trainer.args], env, trainer.image)
    if job.step_key == trainer_contract.FINAL:
        return [Command("final-pick", jobs_command("final-pick", search_uri)), run]
    return [run]
