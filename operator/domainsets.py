"""DomainSet status: sample counts per domain and modality, and a Ready condition naming bad domains."""

from __future__ import annotations

from datetime import datetime

from mixtura_operator.api.base import Condition
from mixtura_operator.api.domainset import DomainCount, DomainSet, DomainSetStatus


def domainset_status(
    domainset: DomainSet, problems: dict[str, str], counts: dict[str, dict[str, int]], now: datetime
) -> DomainSetStatus:
    domains = []
    for domain in domainset.spec.domains:
        found = counts.get(domain.name) or ({m: domain.samples for m in domain.modalities} if domain.samples else {})
        domains.append(DomainCount(name=domain.name, samples=found))
    total = sum(max(d.samples.values(), default=0) for d in domains)
    bad = [f"{name}: {message}" for name, message in sorted(problems.items())]
    condition = Condition(
        type="Ready",
        status="False" if bad else "True",
        reason="DataMissing" if bad else "Validated",
        message="; ".join(bad)
        if bad
        else f"{len(domains)} domains, {total} samples; edits apply to new searches only (a search runs on the "
        "DomainSet as it was when it started)",
        last_transition_time=now,
        observed_generation=domainset.metadata.generation,
    )
    return DomainSetStatus(
        domains=domains, total_samples=total, conditions=[condition], observed_generation=domainset.metadata.generation
    )
