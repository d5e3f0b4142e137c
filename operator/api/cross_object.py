"""Rules that need more than one resource, or the deployment, and so no CRD schema can hold: checked by
`mixtura validate`/`run` on a manifest file and by the operator (a Failed search with an `InvalidInput`
condition). Each problem names its field."""

from __future__ import annotations

from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.api.plan import final_baselines

LOCAL_SCHEME = "file://"
LOCAL_REFUSED = "file:// is refused on a cluster: use s3://"


def manual_weight_problem(search: MixtureSearch, domainset: DomainSet) -> str | None:
    """Method manual, and the manual baseline of `finalTraining.compareWith`, train on the DomainSet's weights,
    so every domain needs one."""
    if search.spec.method == "manual":
        by = "method manual"
    elif "manual" in final_baselines(search.spec):
        by = "finalTraining.compareWith manual"
    else:
        return None
    for index, domain in enumerate(domainset.spec.domains):
        if domain.weight is None:
            return f"spec.domains[{index}].weight ({domain.name}): required by {by}"
    return None


def local_uri_problems(search: MixtureSearch | None, domainset: DomainSet | None) -> list[str]:
    """On a cluster a `file://` URI or a local path names the operator's or a node's own files (whatever the
    pod's filesystem holds, `/etc` included), never the data the user meant: each one found, by field."""
    problems = []
    if search is not None:
        if search.spec.artifacts.uri.startswith(LOCAL_SCHEME):
            problems.append(f"spec.artifacts.uri: {LOCAL_REFUSED}")
        for role in ("embedding", "proxy", "target"):
            path = getattr(search.spec.models, role).path
            if path is not None and not path.startswith("s3://"):
                problems.append(f"spec.models.{role}.path: a local path is refused on a cluster: use s3://")
        prior = search.spec.search.prior_runs
        if prior is not None and prior.uri.startswith(LOCAL_SCHEME):
            problems.append(f"spec.search.priorRuns.uri: {LOCAL_REFUSED}")
    if domainset is not None:
        problems += [
            f"spec.domains[{index}].{field} ({domain.name}): {LOCAL_REFUSED}"
            for index, domain in enumerate(domainset.spec.domains)
            for field, uri in (("uri", domain.uri), ("imageRoot", domain.image_root))
            if uri is not None and uri.startswith(LOCAL_SCHEME)
        ]
    return problems
