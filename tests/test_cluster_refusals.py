"""Issue 19, the operator's side: on a cluster, file:// URIs and local weights fail the search with a condition
naming the field, before any store is opened (it would be the operator's own filesystem)."""

from __future__ import annotations

from datetime import UTC, datetime

from malformed import CORPUS_S3, domainset, search
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch, Phase
from mixtura_operator.driver import SearchDriver
from mixtura_operator.observe import check_domain_data


class Untouchable:
    """An executor and inputs in one: the DomainSet it is given, and a failure for anything else."""

    def __init__(self, corpus: DomainSet) -> None:
        self.corpus = corpus

    def domainset(self, search: MixtureSearch) -> DomainSet:
        return self.corpus

    def __getattr__(self, name: str):
        raise AssertionError(f"{name} called for a search a cluster refuses")


def refused(spec_changes: dict) -> str:
    body = search(**spec_changes)
    body["metadata"].update(uid="u1", namespace="team")
    stub = Untouchable(DomainSet.model_validate(CORPUS_S3))
    step = SearchDriver(stub, stub, allow_local_uris=False).step(MixtureSearch.model_validate(body), datetime.now(UTC))
    status = step.decision.status
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert status.phase == Phase.FAILED and ready.reason == "InvalidInput" and not step.created
    return ready.message


def test_file_artifacts_fail_the_search_naming_the_field():
    assert refused({"artifacts": {"uri": "file:///etc/shadow"}}).startswith("spec.artifacts.uri: file:// is refused")


def test_local_weights_fail_the_search_naming_the_field():
    message = refused({"models": {"target": {"path": "/root/.ssh/id_rsa"}}})
    assert message.startswith("spec.models.target.path: a local path is refused")


def test_file_domains_are_refused_unread():
    corpus = DomainSet.model_validate(domainset(domains=domainset()["spec"]["domains"][:1]))
    assert check_domain_data(corpus, allow_local=False) == (
        {"digits": "uri: file:// is refused on a cluster: use s3://"},
        {},
    )
