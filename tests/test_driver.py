"""The search driver over a real file:// store: the frozen DomainSet snapshot, one listing of the store per
observer, and the `_STARTED` markers that let a vanished job be judged."""

from __future__ import annotations

from datetime import UTC, datetime

from malformed import domainset, search
from mixtura_operator import layout
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch, Phase
from mixtura_operator.driver import SearchDriver, search_store
from mixtura_operator.reconcile import JobState
from mixtura_operator.store.file import FileStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Jobs:
    """The executor's part in these tests: jobs exist once created, and end as the test says."""

    def __init__(self) -> None:
        self.states: dict[str, JobState] = {}
        self.created: list[str] = []

    def create(self, search, job, search_uri) -> bool:
        if job.step_key in self.states:
            return False
        self.created.append(job.step_key)
        self.states[job.step_key] = JobState("Running")
        return True

    def observe(self, search) -> dict[str, JobState]:
        return dict(self.states)

    def cancel(self, search, step_key) -> None:
        self.states.pop(step_key, None)

    def launcher_problem(self, search) -> str | None:
        return None


class Inputs:
    def __init__(self, domain_set: DomainSet) -> None:
        self.domain_set = domain_set

    def domainset(self, search):
        return self.domain_set

    def concept_store(self, search, name, credentials=None):
        return None, True

    def credentials(self, search):
        return None


def corpus(tmp_path, names) -> DomainSet:
    domains = []
    for name in names:
        (tmp_path / "data" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name / "shard.npz").write_bytes(b"x")
        kind = {"modalities": ["image", "text"], "taskType": "captioning"} if name == "digits" else {}
        uri = (tmp_path / "data" / name).as_uri()
        domains.append({"name": name, "uri": uri, "modalities": ["text"], "taskType": "text", **kind})
    ds = domainset(domains=domains)
    return DomainSet.model_validate(ds)


def madmix_search(tmp_path) -> MixtureSearch:
    s = MixtureSearch.model_validate(
        search(method="madmix", artifacts={"uri": (tmp_path / "runs").as_uri()}, finalTraining={"enabled": False})
    )
    s.metadata.uid, s.metadata.generation = "uid-1", 1
    return s


def test_a_search_runs_on_its_snapshot_whatever_edits_the_domainset_gets(tmp_path):
    s = madmix_search(tmp_path)
    inputs, jobs = Inputs(corpus(tmp_path, ["digits", "prose"])), Jobs()
    driver = SearchDriver(jobs, inputs)
    first = driver.step(s, NOW)
    assert first.decision.status.phase == Phase.EMBEDDING
    assert jobs.created == ["embed/digits", "embed/prose"]
    inputs.domain_set = corpus(tmp_path, ["digits", "added"])
    for key in ("embed/digits", "embed/prose"):
        search_store(s).put_bytes(layout.success_marker(key), b"")
        jobs.states[key] = JobState("Succeeded")
    s = s.model_copy(update={"status": first.decision.status})
    second = driver.step(s, NOW)
    assert jobs.created == ["embed/digits", "embed/prose", "score"], "planned from the snapshot, not the edit"
    assert second.decision.status.phase == Phase.SCORING
    # A new driver (a restarted operator) reads the same snapshot.
    fresh = SearchDriver(jobs, inputs)
    assert fresh.step(s, NOW).decision.status.phase == Phase.SCORING


def test_the_store_is_listed_once_per_observer_and_jobs_leave_started_markers(tmp_path, monkeypatch):
    listings = []
    original = FileStore.list
    monkeypatch.setattr(FileStore, "list", lambda self, prefix="": listings.append(prefix) or original(self, prefix))
    s = madmix_search(tmp_path)
    jobs = Jobs()
    driver = SearchDriver(jobs, Inputs(corpus(tmp_path, ["digits", "prose"])))
    for _ in range(5):
        s = s.model_copy(update={"status": driver.step(s, NOW).decision.status})
    assert len(listings) == 1
    store = search_store(s)
    assert store.exists(layout.started_marker("embed/digits")) and store.exists(layout.SNAPSHOT)
    # The job of embed/prose is deleted before it wrote anything: failed once, never created again.
    del jobs.states["embed/prose"]
    decision = driver.step(s, NOW).decision
    assert decision.status.phase == Phase.FAILED and "embed/prose" in decision.status.message
    assert "vanished" in store.get_bytes(layout.failure_marker("embed/prose")).decode()
    assert jobs.created.count("embed/prose") == 1


def assert_store_unavailable(step, what: str) -> None:
    degraded = next(c for c in step.decision.status.conditions if c.type == "Degraded")
    assert degraded.reason == "StoreUnavailable" and what in degraded.message
    assert step.store_error and step.decision.retry_after is not None and step.created == ()


def test_a_store_that_cannot_be_read_degrades_the_search_instead_of_raising(tmp_path, monkeypatch):
    def broken(self, prefix=""):
        raise OSError("Input/output error")

    monkeypatch.setattr(FileStore, "list", broken)
    step = SearchDriver(Jobs(), Inputs(corpus(tmp_path, ["digits"]))).step(madmix_search(tmp_path), NOW)
    assert_store_unavailable(step, "Input/output error")


def test_a_store_that_cannot_be_written_degrades_the_search_too(tmp_path):
    s = madmix_search(tmp_path)
    (tmp_path / "runs").write_text("a file where the store's folder should be")
    step = SearchDriver(Jobs(), Inputs(corpus(tmp_path, ["digits"]))).step(s, NOW)
    assert_store_unavailable(step, "cannot write spec.json")


class SecretInputs(Inputs):
    """Inputs whose search names a Secret: its keys, or an error reading it, and how often it was read."""

    def __init__(self, domain_set: DomainSet, keys: dict[str, str] | Exception) -> None:
        super().__init__(domain_set)
        self.keys, self.reads = keys, 0

    def credentials(self, search):
        self.reads += 1
        if isinstance(self.keys, Exception):
            raise self.keys
        return self.keys


def test_the_data_is_checked_with_the_searchs_credentials_and_a_secret_read_again_after_a_hold(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        "mixtura_operator.driver.check_domain_data",
        lambda ds, endpoint, allow_local, credentials: seen.append(credentials) or ({}, {"digits": "AccessDenied"}),
    )
    keys = {"AWS_ACCESS_KEY_ID": "search", "AWS_SECRET_ACCESS_KEY": "secret"}
    inputs = SecretInputs(corpus(tmp_path, ["digits"]), keys)
    driver = SearchDriver(Jobs(), inputs)
    s = madmix_search(tmp_path)
    for _ in range(2):
        step = driver.step(s, NOW)
        s = s.model_copy(update={"status": step.decision.status})
    degraded = next(c for c in step.decision.status.conditions if c.type == "Degraded")
    assert degraded.reason == "DataUnreadable" and step.decision.status.phase != Phase.FAILED
    assert seen == [keys, keys] and inputs.reads == 2, "a held search reads its Secret again (it may be fixed)"


def test_a_secret_that_cannot_be_read_holds_the_search(tmp_path):
    refused = RuntimeError("Secret 'creds': 403 Forbidden")
    step = SearchDriver(Jobs(), SecretInputs(corpus(tmp_path, ["digits"]), refused)).step(madmix_search(tmp_path), NOW)
    assert_store_unavailable(step, "403 Forbidden")
    assert step.decision.status.phase != Phase.FAILED


def prior_runs_search(tmp_path, prior_uri: str) -> MixtureSearch:
    s = MixtureSearch.model_validate(
        search(
            method="random",
            search={"space": "domains", "priorRuns": {"uri": prior_uri, "target": "loss"}},
            artifacts={"uri": (tmp_path / "runs").as_uri()},
            finalTraining={"enabled": False},
        )
    )
    s.metadata.uid, s.metadata.generation = "uid-1", 1
    return s


def steps(driver: SearchDriver, s: MixtureSearch, n: int):
    for _ in range(n):
        step = driver.step(s, NOW)
        s = s.model_copy(update={"status": step.decision.status})
    return step


def test_a_prior_runs_csv_that_can_never_be_imported_is_read_once_and_fails_the_search(tmp_path, monkeypatch):
    reads = []
    original = FileStore.get_bytes
    monkeypatch.setattr(FileStore, "get_bytes", lambda self, key: reads.append(key) or original(self, key))
    (tmp_path / "swarm.csv").write_text("run,digits,loss\n1,1.0,2.0\n")
    s = prior_runs_search(tmp_path, (tmp_path / "swarm.csv").as_uri())
    step = steps(SearchDriver(Jobs(), Inputs(corpus(tmp_path, ["digits", "prose"]))), s, 3)
    status = step.decision.status
    assert status.phase == Phase.FAILED and "no weight column for the domains prose" in status.message
    assert reads.count("swarm.csv") == 1


def test_a_prior_runs_csv_that_cannot_be_read_is_read_again_until_it_can(tmp_path, monkeypatch):
    answers = [(None, "cannot read s3://swarms/runs.csv: EndpointConnectionError"), (None, None)]
    calls = []
    monkeypatch.setattr(
        "mixtura_operator.driver.check_prior_runs", lambda *args: calls.append(args) or answers[min(len(calls), 2) - 1]
    )
    driver = SearchDriver(Jobs(), Inputs(corpus(tmp_path, ["digits", "prose"])))
    s = prior_runs_search(tmp_path, "s3://swarms/runs.csv")
    held = driver.step(s, NOW).decision.status
    degraded = next(c for c in held.conditions if c.type == "Degraded")
    assert degraded.reason == "DataUnreadable" and degraded.message.startswith("spec.search.priorRuns: cannot read")
    step = steps(driver, s.model_copy(update={"status": held}), 3)
    assert step.decision.status.phase not in (Phase.FAILED, Phase.PENDING) and len(calls) == 2
    assert search_store(s).exists(layout.SNAPSHOT)
