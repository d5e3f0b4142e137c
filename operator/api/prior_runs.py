"""spec.search.priorRuns: a recorded swarm of runs (a RegMix- or Olmix-style CSV) imported as observations."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from mixtura_operator.api.base import DATA_URI_PATTERN, URI_MAX, ApiModel, Rule, distinct, no_traversal


class PriorRuns(ApiModel):
    """One CSV, a run per row: its domain weights and its value of the search's objective."""

    uri: str = Field(
        pattern=DATA_URI_PATTERN, max_length=URI_MAX, description="The CSV file: s3:// or (mixtura run) file://."
    )
    weight_columns: Annotated[list[Annotated[str, Field(max_length=256)]], AfterValidator(distinct)] | None = Field(
        default=None,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="The columns holding a run's domain weights, named as the DomainSet's domains (in cell "
        "spaces too: each run's domain weights are split over the cells by their samples); default: a column "
        "per domain.",
    )
    target: str = Field(
        min_length=1,
        max_length=256,
        description="The column holding each run's value of spec.objective (same metric, units and goal).",
    )

    rules = (
        no_traversal("uri"),
        Rule(
            cel="!has(self.weightColumns) || !(self.target in self.weightColumns)",
            message="the target column cannot also be a weight column",
            field=".target",
            check=lambda p: p.weight_columns is None or p.target not in p.weight_columns,
        ),
    )

    def columns_for(self, domains: list[str]) -> list[str]:
        return list(self.weight_columns) if self.weight_columns is not None else list(domains)
