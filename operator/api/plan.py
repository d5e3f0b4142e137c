"""What a spec implies, for the operator and the jobs alike: which methods search, the space the mixtures
live in, which domains are embedded (the trials of each proposal: schedule.py). Pure functions of the resources."""

from __future__ import annotations

from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import SEARCH_METHODS, MixtureSearchSpec, Space


def uses_madmix(spec: MixtureSearchSpec) -> bool:
    """The MaD-Mix weights are needed: by the method, or as a baseline of the final training."""
    return spec.method in ("madmix", "madmix+mixatlas") or "madmix" in final_baselines(spec)


def final_baselines(spec: MixtureSearchSpec) -> list[str]:
    """The baselines the target model is trained on besides the chosen mixture (none without final training)."""
    return list(spec.final_training.compare_with or ()) if spec.final_training.enabled else []


def final_steps(spec: MixtureSearchSpec) -> list[str]:
    """The step keys of the final training: `final` (the chosen mixture), then `final/<baseline>`."""
    return ["final", *(f"final/{b}" for b in final_baselines(spec))] if spec.final_training.enabled else []


def searches(spec: MixtureSearchSpec) -> bool:
    return spec.method in SEARCH_METHODS


def search_space(spec: MixtureSearchSpec, domainset: DomainSet) -> Space:
    """The space the search's mixtures live in: `spec.search.space`, by default factorized for the methods
    that search and domains for the others; a cell space becomes domains when no domain has images (no
    concepts to cluster, shared/methods/mixatlas.md step 4)."""
    if not searches(spec):
        return "domains"
    space = spec.search.space or "factorized"
    if not any("image" in d.modalities for d in domainset.spec.domains):
        return "domains"
    return space


def uses_cells(spec: MixtureSearchSpec, domainset: DomainSet) -> bool:
    return search_space(spec, domainset) != "domains"


def embedded_domains(spec: MixtureSearchSpec, domainset: DomainSet) -> list[str]:
    """Domains the embed step runs for: all of them for MaD-Mix, those with images for the concept cells."""
    cells = uses_cells(spec, domainset)
    return [d.name for d in domainset.spec.domains if uses_madmix(spec) or (cells and "image" in d.modalities)]
