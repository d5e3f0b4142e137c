"""DomainSet: the corpus, a list of training domains."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from mixtura_operator.api.base import (
    DATA_URI_PATTERN,
    DNS_LABEL,
    URI_MAX,
    ApiModel,
    Condition,
    ObjectMeta,
    Rule,
    distinct,
    no_traversal,
)

Modality = Literal["image", "text", "video"]
TaskType = Literal["captioning", "ocr", "grounding", "detection", "vqa", "text"]
DataFormat = Literal["webdataset", "llava", "npz"]


class Domain(ApiModel):
    name: str = Field(pattern=DNS_LABEL, max_length=40, description="Unique DNS-label name.")
    uri: str = Field(
        pattern=DATA_URI_PATTERN,
        max_length=URI_MAX,
        description="s3:// or file:// prefix of the domain's shards, or their name pattern "
        "(`s3://b/train-{000000..000199}.tar`), or a LLaVA JSON/JSONL file (a cluster refuses file://).",
    )
    format: DataFormat | None = Field(
        default=None, description="webdataset, llava or npz; detected from the files when omitted."
    )
    image_root: str | None = Field(
        default=None,
        pattern=DATA_URI_PATTERN,
        max_length=URI_MAX,
        description="LLaVA format: the URI that the rows' `image` and `video` paths are relative to "
        "(default: the JSON file's folder).",
    )
    max_bad_sample_fraction: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Share of unreadable samples a step skips (counted, logged) before it fails naming the domain.",
    )
    modalities: Annotated[list[Modality], AfterValidator(distinct)] = Field(
        min_length=1, max_length=3, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    task_type: TaskType
    samples: int | None = Field(default=None, ge=0, le=10**12, description="Sample count, if known.")
    weight: float | None = Field(default=None, ge=0, le=1e6, description="Manual weight (the human baseline).")

    rules = (
        Rule(
            cel="self.taskType != 'text' || self.modalities == ['text']",
            message="a domain with taskType text must have modalities [text]",
            field=".modalities",
            check=lambda d: d.task_type != "text" or d.modalities == ["text"],
        ),
        no_traversal("uri"),
        no_traversal("image_root"),
    )


class DomainSetSpec(ApiModel):
    domains: list[Domain] = Field(
        min_length=1,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    rules = (
        Rule(
            cel="self.domains.all(d, self.domains.exists_one(e, e.name == d.name))",
            message="domain names must be unique",
            field=".domains",
            check=lambda s: len({d.name for d in s.domains}) == len(s.domains),
        ),
        Rule(
            cel="!self.domains.exists(d, has(d.weight)) || self.domains.exists(d, has(d.weight) && d.weight > 0.0)",
            message="manual weights must not all be zero",
            field=".domains",
            check=lambda s: all(d.weight is None for d in s.domains) or any((d.weight or 0) > 0 for d in s.domains),
        ),
    )


class DomainCount(ApiModel):
    name: str
    samples: dict[str, int] = Field(default_factory=dict, description="Validated sample count per modality.")


class DomainSetStatus(ApiModel):
    domains: list[DomainCount] = Field(default_factory=list)
    total_samples: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


class DomainSet(ApiModel):
    api_version: Literal["mixtura.dev/v1alpha1"] = "mixtura.dev/v1alpha1"
    kind: Literal["DomainSet"] = "DomainSet"
    metadata: ObjectMeta
    spec: DomainSetSpec
    status: DomainSetStatus | None = None
