"""Issue 18 in the pure state machine: asynchronous proposals (each freed slot proposed at once, conditioned on
the running trials), rounds, and repeatTop's reruns with new seeds."""

from __future__ import annotations

from test_reconcile import NOW, World, drive, make

from mixtura_operator import trainer_contract as contract
from mixtura_operator.api.mixturesearch import Phase, Trainer
from mixtura_operator.executors.commands import step_commands
from mixtura_operator.reconcile import CreateJob, reconcile


def step(s, world):
    decision = reconcile(s, world_ds(s), world.observed, NOW)
    world.apply(decision.actions)
    return s.model_copy(update={"status": decision.status}), decision


def world_ds(s):
    return make()[1]


def trials_running(world) -> list[str]:
    return sorted(k for k in world.running() if k.startswith("trial/"))


def searching(schedule="async", max_trials=7, parallel=3, **settings):
    s, _ = make(
        method="mixatlas",
        max_trials=max_trials,
        parallel=parallel,
        settings={"space": "domains", "schedule": schedule, **settings},
        final=False,
    )
    world = World()
    s, _ = step(s, world)
    world.finish("propose/0")
    s, _ = step(s, world)
    return s, world


def finish_one_at_a_time(s, world, order=None):
    """Finish trials one by one (the oldest first, or by `order`), every proposal as soon as it runs; the
    number of trials running after each reconcile."""
    counts = []
    for _ in range(100):
        s, _ = step(s, world)
        for key in [k for k in world.running() if k.startswith("propose/")]:
            world.finish(key)
            s, _ = step(s, world)
        running = trials_running(world)
        counts.append(len(running))
        if not running:
            return s, counts
        key = next((k for k in order or () if k in running), running[0])
        world.finish(key, objective=1.0 + int(key.split("/")[1]) / 100)
    raise AssertionError("trials never stopped running")


def test_async_proposes_each_freed_slot_at_once_conditioned_on_the_running_trials():
    s, world = searching()
    assert trials_running(world) == ["trial/000", "trial/001", "trial/002"]
    world.finish("trial/001")
    s, decision = step(s, world)
    assert [a.step_key for a in decision.actions] == ["propose/1"]
    assert world.args["propose/1"] == ("--round", "1", "--trials", "003", "--pending", "000,002")
    assert decision.status.message == "async: proposing for 1 freed slot while 2 trials run"
    # A second slot frees while that proposal runs: it waits for it, then gets its own.
    world.finish("trial/000")
    s, decision = step(s, world)
    assert decision.actions == ()
    world.finish("propose/1")
    s, decision = step(s, world)
    assert [a.step_key for a in decision.actions] == ["trial/003", "propose/2"]
    assert world.args["propose/2"] == ("--round", "2", "--trials", "004", "--pending", "002,003")


def test_async_keeps_parallel_trials_running_while_the_budget_lasts_and_never_exceeds_it():
    s, world = searching(max_trials=7, parallel=3)
    s, counts = finish_one_at_a_time(s, world)
    # 7 trials: 3, then a new one for each of the first 4 that finish; then the last 3 drain.
    assert counts[:5] == [3, 3, 3, 3, 3] and counts[5:] == [2, 1, 0]
    trials = [k for k in world.created if k.startswith("trial/")]
    assert trials == [f"trial/{i:03d}" for i in range(7)]
    assert s.status.trials.progress == "7/7" and s.status.message == "writing the report"


def test_async_never_proposes_a_trial_that_is_pending_or_proposed():
    s, world = searching(max_trials=9, parallel=3)
    finish_one_at_a_time(s, world, order=["trial/002", "trial/000", "trial/004"])
    proposed = []
    for key, args in world.args.items():
        if key.startswith("propose/"):
            job = CreateJob(key, args)
            trials = job.option("--trials").split(",")
            pending = (job.option("--pending") or "").split(",")
            assert not set(trials) & set(proposed) and not set(trials) & set(pending)
            assert set(p for p in pending if p) <= set(proposed)
            proposed += trials
    assert proposed == [f"{i:03d}" for i in range(9)]


def test_rounds_wait_for_the_slowest_trial():
    s, world = searching(schedule="rounds", max_trials=6, parallel=3)
    world.finish("trial/000")
    world.finish("trial/001")
    s, decision = step(s, world)
    assert decision.actions == () and decision.status.message == "round 0: 1 trial in flight, 2/6 finished"
    world.finish("trial/002")
    s, decision = step(s, world)
    assert world.args["propose/1"] == ("--round", "1", "--trials", "003,004,005")


def test_repeat_top_reruns_exactly_k_best_trials_with_new_seeds_before_the_final_pick():
    s, ds = make(method="mixatlas", max_trials=4, parallel=2, settings={"space": "domains", "repeatTop": 2}, final=True)
    world = World()
    s, _ = drive(s, ds, world)
    assert s.status.phase == Phase.SUCCEEDED
    created = world.created
    repeat = next(k for k in created if k.startswith("propose/") and "--repeat-of" in world.args[k])
    # drive() gives lower objectives (better, minimised) to the first trial of each turn: 000 and 002 or 003.
    best = sorted(world.observed.trials, key=lambda t: (world.observed.trials[t].objective, t))
    best = [t for t in best if t not in ("004", "005")][:2]
    assert CreateJob(repeat, world.args[repeat]).option("--repeat-of") == ",".join(best)
    assert [k for k in created if k.startswith("trial/")][-2:] == ["trial/004", "trial/005"]
    assert world.args["trial/004"] == ("--trial", "004", "--repeat", "1")
    assert world.args["trial/005"] == ("--trial", "005", "--repeat", "2")
    assert world.args["trial/000"] == ("--trial", "000")
    assert created.index("trial/005") < created.index("final")
    assert sum(k.startswith("trial/") for k in created) == 4 + 2
    assert s.status.trials.progress == "6/6"


def test_a_raised_budget_after_repeats_goes_on_with_new_ids_and_no_more_repeats():
    s, ds = make(method="random", max_trials=2, parallel=2, settings={"space": "domains", "repeatTop": 1})
    world = World()
    s, _ = drive(s, ds, world)
    s.spec.budget.max_trials = 4
    world.created.clear()
    s, _ = drive(s, ds, world)
    assert s.status.phase == Phase.SUCCEEDED
    assert [k for k in world.created if k.startswith("trial/")] == ["trial/003", "trial/004"]


def test_every_trial_gets_the_search_seed_and_each_repeat_a_new_one_in_the_contract():
    s, _ = make(method="mixatlas", settings={"space": "domains", "seed": 5, "repeatTop": 2})
    s.spec.trainer = Trainer(command=["train"])

    def seed(job: CreateJob) -> str:
        (command,) = step_commands(s, job, "s3://b/root")
        return command.env[contract.SEED]

    trials = {seed(CreateJob(f"trial/{i:03d}", ("--trial", f"{i:03d}"))) for i in range(6)}
    repeats = [seed(CreateJob(f"trial/{i:03d}", ("--trial", f"{i:03d}", "--repeat", str(i - 5)))) for i in (6, 7)]
    assert trials == {"5"} and len({*repeats, "5"}) == 3
    assert repeats == [str(contract.trial_seed(5, 1)), str(contract.trial_seed(5, 2))]
