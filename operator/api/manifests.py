"""Loading manifests from YAML with the same validation the API server applies, errors naming the field.

Any input is refused in one line per problem, never with a traceback: a file that is not UTF-8 or not YAML,
alias bombs, deep nesting, documents that are not objects. Mixtura's resources are read strictly (no type
coercion: `maxTrials: "20"` is refused as the API server refuses it) and by their wire names only; other
kinds (a Secret, a ConfigMap) may share the file and are checked for what the searches need of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mixtura_operator.api.cross_object import local_uri_problems, manual_weight_problem
from mixtura_operator.api.domainset import DomainSet
from mixtura_operator.api.mixturesearch import MixtureSearch

KINDS: dict[str, type[DomainSet] | type[MixtureSearch]] = {
    "DomainSet": DomainSet,
    "MixtureSearch": MixtureSearch,
}
GROUP_PREFIX = "mixtura.dev/"
# The API server's own request limit; a manifest file larger than that could never be applied.
MAX_BYTES = 3 * 1024 * 1024
# Far beyond any real manifest; they bound the work an alias bomb or a deeply nested document can cause.
MAX_DEPTH = 64
MAX_VALUES = 100_000
CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


class ManifestError(ValueError):
    """One or more manifests are invalid; the message lists every problem with its field path, one a line."""


@dataclass(frozen=True)
class Bundle:
    domainsets: dict[str, DomainSet]
    searches: list[MixtureSearch]
    # Other objects in the file (Secrets, ConfigMaps, ...) by (kind, name), as plain data.
    others: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

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

    def check(self, cluster: bool = False) -> None:
        """Raise ManifestError with every problem `problems` finds."""
        problems = self.problems(cluster)
        if problems:
            raise ManifestError("\n".join(problems))

    def problems(self, cluster: bool = False) -> list[str]:
        """What only the file as a whole shows: references, manual weights, credentials, and with `cluster`
        the URIs a cluster refuses."""
        out: list[str] = []
        if cluster:
            out += [f"DomainSet/{n}: {p}" for n, d in self.domainsets.items() for p in local_uri_problems(None, d)]
        for search in self.searches:
            where = f"MixtureSearch/{search.metadata.name}"
            try:
                domainset = self.domainset_for(search)
                self.concepts_from(search)
            except ManifestError as error:
                out.append(str(error))
                continue
            problem = manual_weight_problem(search, domainset)
            if problem:
                out.append(f"DomainSet/{domainset.metadata.name}: {problem} ({where})")
            if cluster:
                out += [f"{where}: {p}" for p in local_uri_problems(search, None)]
            out += [f"{where}: {p}" for p in self._credential_problems(search)]
        return out

    def _credential_problems(self, search: MixtureSearch) -> list[str]:
        name = search.spec.artifacts.credentials_secret
        secret = self.others.get(("Secret", name or ""))
        if secret is None:
            return []
        present = {*_mapping(secret.get("data")), *_mapping(secret.get("stringData"))}
        missing = [key for key in CREDENTIAL_KEYS if key not in present]
        if not missing:
            return []
        return [f"spec.artifacts.credentialsSecret: Secret {name!r} in the file lacks {', '.join(missing)}"]


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def format_errors(kind: str, name: str, error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not str(p).startswith("function-"))
        path = _path(loc)
        if item["type"] == "cel_rule":
            path += item["ctx"]["field"]
        lines.append(f"{kind}/{name}: {path}: {_one_line(item['msg'])}")
    return lines


def _plain(node: Any, path: str, depth: int, budget: list[int]) -> Any:
    """The document as JSON data, as `kubectl` sends it: YAML timestamps become strings, keys must be strings,
    and nesting and the number of values (aliases expanded) are bounded. Paths stop growing at depth 8."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ManifestError(f"{path or '.'}: more than {MAX_VALUES} values (a YAML alias bomb?)")
    if depth > MAX_DEPTH:
        raise ManifestError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise ManifestError(f"{path or '.'}: key {key!r} is not a string")
            out[key] = _plain(value, _child(path, f".{key}", depth), depth + 1, budget)
        return out
    if isinstance(node, list):
        return [_plain(value, _child(path, f"[{i}]", depth), depth + 1, budget) for i, value in enumerate(node)]
    if isinstance(node, date):
        return node.isoformat()
    if isinstance(node, bytes):
        raise ManifestError(f"{path}: binary values are not supported")
    return node


def _child(path: str, part: str, depth: int) -> str:
    if depth >= 8:
        return path if path.endswith("...") else f"{path}..."
    return f"{path}{part}" if path else part.lstrip(".")


def _identity(document: Any, index: int) -> tuple[str, str]:
    """(kind, name) of a document, or the one-line reason it is not a Kubernetes object."""
    if not isinstance(document, dict):
        raise ManifestError(
            f"document {index}: expected an object with apiVersion, kind and metadata, got {type(document).__name__}"
        )
    kind, meta = document.get("kind"), document.get("metadata")
    if not isinstance(kind, str) or not kind:
        raise ManifestError(f"document {index}: kind: must be a non-empty string, got {type(kind).__name__}")
    if not isinstance(document.get("apiVersion"), str):
        raise ManifestError(f"{kind} (document {index}): apiVersion: must be a string")
    if not isinstance(meta, dict):
        raise ManifestError(f"{kind} (document {index}): metadata: must be an object, got {type(meta).__name__}")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{kind} (document {index}): metadata.name: must be a non-empty string")
    return kind, name


def parse(document: Any, index: int = 1) -> DomainSet | MixtureSearch | dict[str, Any]:
    """One document: a DomainSet or a MixtureSearch validated as the API server would, or another kind's
    object as plain data. ManifestError names every problem's field."""
    kind, name = _identity(document, index)
    try:
        plain = _plain(document, "", 0, [MAX_VALUES])
    except ManifestError as error:
        raise ManifestError(f"{kind}/{name}: {error}") from None
    if kind not in KINDS:
        if plain["apiVersion"].startswith(GROUP_PREFIX):
            known = ", ".join(KINDS)
            raise ManifestError(f"{kind}/{name}: kind: not a kind of {plain['apiVersion']}; expected one of {known}")
        return plain
    # The API server drops a status sent on create (the status subresource is the operator's), and so do we.
    plain.pop("status", None)
    try:
        return KINDS[kind].model_validate(plain, strict=True, by_alias=True, by_name=False)
    except ValidationError as error:
        raise ManifestError("\n".join(format_errors(kind, name, error))) from None


def _documents(path: Path) -> list[Any]:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ManifestError(f"{path}: {size} bytes, more than the API server's {MAX_BYTES}")
        data = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not UTF-8: byte {data[error.start]:#04x} at offset {error.start}") from None
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ManifestError(f"{where}: not valid YAML: {_one_line(error.problem or error)}") from None
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML: {_one_line(error)}") from None
    except RecursionError:
        raise ManifestError(f"{path}: not valid YAML: nested too deeply") from None


def load(path: Path) -> Bundle:
    """Every DomainSet, MixtureSearch and other object in a (multi-document) YAML file; all errors reported at
    once. The rules across objects are `Bundle.check`'s."""
    problems: list[str] = []
    objects: list[DomainSet | MixtureSearch] = []
    others: dict[tuple[str, str], dict[str, Any]] = {}
    seen: set[tuple[str, str]] = set()
    for index, document in enumerate(_documents(path), start=1):
        try:
            parsed = parse(document, index)
        except ManifestError as error:
            problems.append(str(error))
            continue
        key = _identity(parsed, index) if isinstance(parsed, dict) else (parsed.kind, parsed.metadata.name)
        if key in seen:
            problems.append(f"{key[0]}/{key[1]}: metadata.name: defined twice in the file")
            continue
        seen.add(key)
        if isinstance(parsed, dict):
            others[key] = parsed
        else:
            objects.append(parsed)
    if problems:
        raise ManifestError("\n".join(problems))
    return Bundle(
        {o.metadata.name: o for o in objects if isinstance(o, DomainSet)},
        [o for o in objects if isinstance(o, MixtureSearch)],
        others,
    )
