"""Shared pieces of the resource models: camelCase fields, CEL rules checked in both places, conditions."""

from __future__ import annotations

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
    check: Callable[[Any], bool] | None = None


class ApiModel(BaseModel):
    """Base of every resource model: camelCase on the wire, unknown fields refused (as kubectl's strict
    field validation does)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in type(self).rules:
            if rule.check is not None and not rule.check(self):
                raise PydanticCustomError("cel_rule", "{message}", {"message": rule.message, "field": rule.field})
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
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
