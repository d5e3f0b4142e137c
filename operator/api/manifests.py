"""Loading manifests from YAML with the same validation the API server applies, errors naming the field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch

KINDS: dict[str, type[DomainSet] | type[MixtureSearch]] = {
    "DomainSet": DomainSet,
    "MixtureSearch": MixtureSearch,
}


class ManifestError(ValueError):
    """One or more manifests are invalid; the message lists every problem with its field path."""


@dataclass(frozen=True)
class Bundle:
    domainsets: dict[str, DomainSet]
    searches: list[MixtureSearch]

    def domainset_for(self, search: MixtureSearch) -> DomainSet:
        name = search.spec.domain_set_ref.name
        if name not in self.domainsets:
            raise ManifestError(
                f"MixtureSearch/{search.metadata.name}: spec.domainSetRef.name: DomainSet {name!r} not found"
            )
        return self.domainsets[name]

    def concepts_from(self, search: MixtureSearch) -> MixtureSearch | None:
        """The earlier search in the file that spec.search.conceptCentroidsFrom names (None without one)."""
        name = search.spec.search.concept_centroids_from
        if name is None:
            return None
        earlier = self.searches[: self.searches.index(search)]
        found = [s for s in earlier if s.metadata.name == name]
        if not found:
            raise ManifestError(
                f"MixtureSearch/{search.metadata.name}: spec.search.conceptCentroidsFrom: no MixtureSearch {name!r} "
                "before it in the file"
            )
        return found[0]


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def format_errors(kind: str, name: str, error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if p not in ("function-after",) and not str(p).startswith("function-"))
        path = _path(loc)
        if item["type"] == "cel_rule":
            path += item["ctx"]["field"]
        lines.append(f"{kind}/{name}: {path}: {item['msg']}")
    return lines


def parse(document: dict[str, Any]) -> DomainSet | MixtureSearch:
    kind = document.get("kind")
    if kind not in KINDS:
        raise ManifestError(f"kind: unsupported {kind!r}; expected one of {sorted(KINDS)}")
    name = (document.get("metadata") or {}).get("name", "?")
    try:
        return KINDS[kind].model_validate(document)
    except ValidationError as error:
        raise ManifestError("\n".join(format_errors(kind, name, error))) from None


def load(path: Path) -> Bundle:
    """Every DomainSet and MixtureSearch in a (multi-document) YAML file; all errors reported at once."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML: {error}") from None
    problems: list[str] = []
    objects: list[DomainSet | MixtureSearch] = []
    for document in documents:
        try:
            objects.append(parse(document))
        except ManifestError as error:
            problems.append(str(error))
    if problems:
        raise ManifestError("\n".join(problems))
    return Bundle(
        {o.metadata.name: o for o in objects if isinstance(o, DomainSet)},
        [o for o in objects if isinstance(o, MixtureSearch)],
    )
