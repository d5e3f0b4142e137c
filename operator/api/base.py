"""Shared pieces of the resource models: camelCase fields, CEL rules checked in both places, conditions."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


@dataclass(frozen=True)
class Rule:
    """One validation rule, declared once: the CEL the API server runs and the same check in Python.

    `field` is the path (relative to the object the rule sits on) that the error names, as the API
    server's `fieldPath`; tests check that both sides refuse the same manifests. A transition rule (its CEL
    reads `oldSelf`) has no `check`: it compares an update with the stored object, which only the API server has.
    """

    cel: str
    message: str
    field: str
    # None: a rule only the API server can check (a transition rule: it needs the old object).
    check: Callable[[Any], bool] | None = None
    # The Python side's message when it can say more than the CEL message (e.g. which key).
    explain: Callable[[Any], str] | None = None


# Kubernetes name and value syntax (RE2: the API server and pydantic's regex engine read them alike); the bounded
# repeats carry the length limits, so one pattern says it all.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_VALUE = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
DNS_SUBDOMAIN = f"^{_SUBDOMAIN}$"
LABEL_VALUE = f"^({_LABEL_VALUE})?$"
QUALIFIED_NAME = f"^({_SUBDOMAIN}/)?{_LABEL_VALUE}$"
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
# A `..` path segment, also percent-encoded: a URI that climbs out of its prefix.
TRAVERSAL = "(^|/)([.]|%2[eE]){2}(/|$)"
URI_MAX = 1024
# Where data and artifacts live: an S3 bucket and prefix, or (`mixtura run`; a cluster refuses it) a local path.
DATA_URI_PATTERN = r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?|file://[^\s]+)$"


def distinct(values: list[str]) -> list[str]:
    """What `x-kubernetes-list-type: set` makes the API server check."""
    if len(set(values)) != len(values):
        raise ValueError("values must be distinct")
    return values


def no_traversal(field: str) -> Rule:
    """The rule that an optional URI field of the model holds no `..` segment."""
    wire = to_camel(field)
    return Rule(
        cel=f"!has(self.{wire}) || !self.{wire}.matches('{TRAVERSAL}')",
        message="must not contain '..' path segments",
        field=f".{wire}",
        check=lambda m: getattr(m, field) is None or re.search(TRAVERSAL, getattr(m, field)) is None,
    )


class ApiModel(BaseModel):
    """Base of every resource model: camelCase on the wire, unknown fields refused (as kubectl's strict
    field validation does), no NaN or infinity (JSON has none). Manifests are read strictly and by wire
    name only (`manifests.parse`); Python names are for the code."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", allow_inf_nan=False)
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in type(self).rules:
            if rule.check is not None and not rule.check(self):
                message = rule.explain(self) if rule.explain else rule.message
                raise PydanticCustomError("cel_rule", "{message}", {"message": message, "field": rule.field})
        return self

    def wire(self) -> dict[str, Any]:
        """The object as it appears in a manifest: camelCase, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: str
    status: ConditionStatus
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """Replace the condition of the same type, keeping its transition time when the status is unchanged."""
    out: list[Condition] = []
    for old in conditions:
        if old.type == new.type:
            if old.status == new.status:
                new = new.model_copy(update={"last_transition_time": old.last_transition_time})
            continue
        out.append(old)
    out.append(new)
    return sorted(out, key=lambda c: c.type)


class ObjectMeta(ApiModel):
    """The part of metadata Mixtura reads; the rest passes through untouched."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    # A DNS label, not the subdomain Kubernetes allows: the name goes into Job names and label values.
    name: str = Field(pattern=DNS_LABEL, max_length=63)
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
