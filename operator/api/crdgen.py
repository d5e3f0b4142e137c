"""Generates the CustomResourceDefinitions from the pydantic models (the only source of the schemas)."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from mixtura_operator.api.base import ApiModel, ObjectMeta
from mixtura_operator.api.domainset import DomainSet, DomainSetSpec, DomainSetStatus
from mixtura_operator.api.mixturesearch import (
    MUTABLE_SEARCH_FIELDS,
    MixtureSearch,
    MixtureSearchSpec,
    MixtureSearchStatus,
)

GROUP = "mixtura.dev"
VERSION = "v1alpha1"
# Structural schemas carry no titles or refs, and prune unknown fields instead of `additionalProperties: false`.
_DROP = {"title", "$defs"}


def _rules_by_title(model: type[BaseModel], out: dict[str, type[ApiModel]]) -> dict[str, type[ApiModel]]:
    """Every ApiModel reachable from `model`, keyed by the title pydantic gives its schema."""
    if issubclass(model, ApiModel) and model.__name__ not in out:
        out[model.__name__] = model
        for field in model.model_fields.values():
            for arg in _types_in(field.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    _rules_by_title(arg, out)
    return out


def _types_in(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return [annotation]
    return [t for a in args for t in _types_in(a)]


def _structural(node: Any, defs: dict[str, Any], models: dict[str, type[ApiModel]]) -> Any:
    """Turn pydantic's JSON Schema into a Kubernetes structural schema: refs inlined, `anyOf [X, null]`
    made nullable, exclusive bounds in OpenAPI v3.0 form, CEL rules attached to their objects."""
    if isinstance(node, list):
        return [_structural(n, defs, models) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].split("/")[-1]
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs, models)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"a union is not a structural schema: {node}")
        # Optional fields are simply omitted on the wire; a null default means "absent".
        rest = {k: v for k, v in node.items() if k != "anyOf" and not (k == "default" and v is None)}
        return {**_structural(options[0], defs, models), **_structural(rest, defs, models)}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "additionalProperties" and isinstance(value, bool)):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out[key.replace("exclusive", "").lower()] = value
            out[key] = True
        elif key == "properties":
            out[key] = {k: _structural(v, defs, models) for k, v in value.items()}
        else:
            out[key] = _structural(value, defs, models)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    title = node.get("title")
    if title in models and models[title].rules and "properties" in out:
        out["x-kubernetes-validations"] = [
            {"rule": r.cel, "message": r.message, "fieldPath": r.field, "reason": "FieldValueInvalid"}
            for r in models[title].rules
        ]
    return out


def object_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(schema, schema.get("$defs", {}), _rules_by_title(model, {}))


def metadata_schema() -> dict[str, Any]:
    """The one part of metadata a CRD may restrict: the name, which goes into Job names and label values."""
    return {"type": "object", "properties": {"name": object_schema(ObjectMeta)["properties"]["name"]}}


def immutable_fields(spec: type[BaseModel], mutable: tuple[str, ...]) -> list[dict[str, str]]:
    """A transition rule per field of `spec` outside `mutable`: present as before, and equal."""
    rules = []
    for name, info in spec.model_fields.items():
        wire = info.alias or name
        if wire in mutable:
            continue
        same = f"has(self.{wire}) == has(oldSelf.{wire}) && (!has(self.{wire}) || self.{wire} == oldSelf.{wire})"
        rules.append(
            {
                "rule": same,
                "message": "spec is immutable once the search exists (but for suspend and budget.maxTrials): "
                "create a new MixtureSearch",
                "fieldPath": f".{wire}",
                "reason": "FieldValueForbidden",
            }
        )
    return rules


def _crd(
    kind: str,
    plural: str,
    short: list[str],
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, str]],
    spec_rules: list[dict[str, str]],
) -> dict[str, Any]:
    spec_schema = object_schema(spec)
    spec_schema.setdefault("x-kubernetes-validations", []).extend(spec_rules)
    if not spec_schema["x-kubernetes-validations"]:
        del spec_schema["x-kubernetes-validations"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "mixtura"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["mixtura"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": metadata_schema(),
                                "spec": spec_schema,
                                "status": object_schema(status),
                            },
                        }
                    },
                }
            ],
        },
    }


def crds() -> dict[str, dict[str, Any]]:
    """File name → CRD object, for every resource."""
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    search = _crd(
        MixtureSearch.__name__,
        "mixturesearches",
        ["msearch"],
        MixtureSearchSpec,
        MixtureSearchStatus,
        [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Method", "type": "string", "jsonPath": ".spec.method"},
            {"name": "Trials", "type": "string", "jsonPath": ".status.trials.progress"},
            {"name": "Objective", "type": "string", "jsonPath": ".status.objective", "priority": 1},
            {"name": "Best", "type": "number", "jsonPath": ".status.bestTrial.objective"},
            age,
        ],
        immutable_fields(MixtureSearchSpec, MUTABLE_SEARCH_FIELDS),
    )
    domainset = _crd(
        DomainSet.__name__,
        "domainsets",
        ["dset"],
        DomainSetSpec,
        DomainSetStatus,
        [
            {"name": "Domains", "type": "integer", "jsonPath": ".status.domains[*].name"},
            {"name": "Samples", "type": "integer", "jsonPath": ".status.totalSamples"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"},
            age,
        ],
        [],
    )
    return {"mixtura.dev_mixturesearches.yaml": search, "mixtura.dev_domainsets.yaml": domainset}


def render(crd: dict[str, Any]) -> str:
    header = "# Generated by `mixtura crds` from the pydantic models in operator/api/. Do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=120)
