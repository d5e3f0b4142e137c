"""spec.search.priorRuns: a recorded swarm of runs (a RegMix- or Olmix-style CSV) imported as observations."""

from __future__ import annotations

from pydantic import Field

from mixtura_operator.api.base import DATA_URI_PATTERN, URI_MAX, ApiModel, Rule, no_traversal


class PriorRuns(ApiModel):
    """One CSV, a run per row: its domain weights and its value of the search's objective."""

    uri: str = Field(
        pattern=DATA_URI_PATTERN, max_length=URI_MAX, description="The CSV file: s3:// or (mixtura run) file://."
    )
    weight_columns: list[str] | None = Field(
        default=None,
        max_length=256,
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
            cel="!has(self.weightColumns) || self.weightColumns.all(c, self.weightColumns.exists_one(d, d == c))",
            message="must not repeat a column",
            field=".weightColumns",
            check=lambda p: p.weight_columns is None or len(set(p.weight_columns)) == len(p.weight_columns),
        ),
        Rule(
            cel="!has(self.weightColumns) || !(self.target in self.weightColumns)",
            message="the target column cannot also be a weight column",
            field=".target",
            check=lambda p: p.weight_columns is None or p.target not in p.weight_columns,
        ),
    )

    def columns_for(self, domains: list[str]) -> list[str]:
        return list(self.weight_columns) if self.weight_columns is not None else list(domains)
