"""MixtureSearch: one experiment that finds the mixture of a DomainSet's domains."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from mixtura_operator.api.base import ApiModel, Condition, ObjectMeta, Rule

Method = Literal["madmix", "mixatlas", "madmix+mixatlas", "uniform", "manual", "random", "regression"]
# The methods that propose and train trials; the others only produce domain weights.
SEARCH_METHODS = ("mixatlas", "madmix+mixatlas", "random", "regression")
Space = Literal["domains", "factorized", "full"]
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# What may change once a search exists (the rest of spec is immutable, by a CEL transition rule per field):
# suspend, and budget, whose own rules let only maxTrials change (upwards).
MUTABLE_SEARCH_FIELDS = ("suspend", "budget")
FREE_FORM = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


class Phase(StrEnum):
    PENDING = "Pending"
    EMBEDDING = "Embedding"
    SCORING = "Scoring"
    SEARCHING = "Searching"
    TRAINING = "Training"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class DomainSetRef(ApiModel):
    name: str = Field(pattern=NAME_PATTERN, max_length=253)


class ModelSpec(ApiModel):
    """A model the jobs build: a config (random weights, tiny by default) or weights from a local path/URI."""

    config: dict[str, Any] = Field(default_factory=dict, json_schema_extra=FREE_FORM)
    weights: str | None = Field(default=None, description="Local path or s3:// URI of a checkpoint.")


class Models(ApiModel):
    embedding: ModelSpec = Field(default_factory=ModelSpec)
    proxy: ModelSpec = Field(default_factory=ModelSpec)
    target: ModelSpec = Field(default_factory=lambda: ModelSpec(config={"size": "target"}))


class MadmixSettings(ApiModel):
    lambda_: float = Field(default=1.0, gt=0, alias="lambda")
    temperature: float = Field(default=1.0, gt=0)
    score: Literal["dual", "leverage"] = "dual"
    samples_per_domain: int = Field(default=512, ge=1, le=100_000)


class SearchSettings(ApiModel):
    # No schema default: a default `factorized` would be written into the `search` of madmix, uniform and
    # manual searches by the API server, which then refuses them (their space must be domains).
    space: Space | None = Field(
        default=None,
        description="Mixture coordinates: factorized (concept weights x task weights; the default for methods "
        "that search), full (one weight per concept x task cell) or domains (the default otherwise). "
        "Cell spaces fall back to domains when no domain has images.",
    )
    concept_clusters: int = Field(default=10, ge=2, le=64)
    concept_centroids_from: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        max_length=253,
        description="An earlier MixtureSearch in this namespace whose concept centroids this search reuses, so "
        "that both corpora are mapped onto the same concepts.",
    )
    warm_start_from: list[Annotated[str, Field(pattern=NAME_PATTERN, max_length=253)]] = Field(
        default_factory=list,
        description="Earlier MixtureSearches in this namespace over the same domains or cells: their finished "
        "trials are this search's first observations (the search waits for them to finish).",
    )
    acquisition: Literal["ucb"] = "ucb"
    beta: float = Field(default=2.0, gt=0, description="UCB exploration weight (schedule constant).")
    beta_schedule: Literal["constant", "srinivas"] = "constant"
    seed: int = Field(default=0, ge=0)
    # Muennighoff et al. (2023), data-constrained scaling: up to ~4 epochs, repeated data is worth almost as
    # much as new data.
    max_repetition: float = Field(
        default=4.0,
        ge=1,
        description="The most epochs of a cell's samples a training run may draw: caps each cell's weight.",
    )


class Budget(ApiModel):
    max_trials: int = Field(
        default=16, ge=1, le=10_000, description="May be raised later: the search, even a Succeeded one, goes on."
    )
    parallel_trials: int = Field(default=4, ge=1, le=256)
    max_failed_trials: int = Field(
        default=3, ge=0, description="The search fails when more trials than this have failed (Katib's semantics)."
    )
    proxy_steps: int = Field(default=60, ge=1)

    rules = (
        Rule(
            cel="self.maxTrials >= oldSelf.maxTrials",
            message="may be raised, never lowered",
            field=".maxTrials",
        ),
        *(
            Rule(
                cel=f"self.{name} == oldSelf.{name}",
                message="is immutable: only maxTrials may change",
                field=f".{name}",
            )
            for name in ("parallelTrials", "maxFailedTrials", "proxySteps")
        ),
        Rule(
            cel="self.parallelTrials <= self.maxTrials",
            message="must be <= maxTrials",
            field=".parallelTrials",
            check=lambda b: b.parallel_trials <= b.max_trials,
        ),
    )


class Toleration(ApiModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class JobResources(ApiModel):
    image: str | None = Field(
        default=None, min_length=1, description="Jobs image; default: the operator's MIXTURA_JOBS_IMAGE."
    )
    gpus_per_job: int = Field(default=1, ge=0, le=64)
    cpu: str = Field(default="2", pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: str = Field(default="8Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)?$")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    queue_name: str | None = Field(default=None, description="Kueue LocalQueue; Jobs are created suspended.")
    backoff_limit: int = Field(default=2, ge=0, le=20)
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)


class Artifacts(ApiModel):
    uri: str = Field(pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?|file://.+)$")
    endpoint_url: str | None = Field(default=None, description="S3 endpoint for S3-compatible stores.")
    credentials_secret: str | None = Field(
        default=None, description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )
    policy: Literal["Retain", "Delete"] = "Retain"


class MergeMixSettings(ApiModel):
    r: int = Field(default=4, ge=0, description="Tokens merged per layer.")
    alpha: float = Field(default=1.0, gt=0, description="Beta(alpha, alpha) of the mixing ratio.")
    beta: float = Field(default=1.0, gt=0, description="SimPO temperature.")
    weight: float = Field(default=1.0, ge=0, description="Weight of the SimPO term.")
    detach_loser: bool = False
    lambda_rescale: bool = False


class Augmentation(ApiModel):
    type: Literal["none", "mergemix"] = "none"
    mergemix: MergeMixSettings = Field(default_factory=MergeMixSettings)


class Training(ApiModel):
    augmentation: Augmentation = Field(default_factory=Augmentation)


class FinalTraining(ApiModel):
    enabled: bool = True
    steps: int = Field(default=200, ge=1)


class MixtureSearchSpec(ApiModel):
    suspend: bool = Field(
        default=False,
        description="True stops the search: its running jobs are deleted, no new ones start; false resumes it.",
    )
    domain_set_ref: DomainSetRef
    method: Method = "madmix+mixatlas"
    models: Models = Field(default_factory=Models)
    madmix: MadmixSettings = Field(default_factory=MadmixSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    # Defaulted by the API server too, so that budget's transition rules always see the stored values.
    budget: Budget = Field(default_factory=Budget, json_schema_extra={"default": Budget().wire()})
    resources: JobResources = Field(default_factory=JobResources)
    artifacts: Artifacts
    training: Training = Field(default_factory=Training)
    final_training: FinalTraining = Field(default_factory=FinalTraining)

    rules = (
        Rule(
            # Absent fields mean their defaults (the API server does not default nested objects left out).
            cel="!(self.method in ['madmix', 'uniform', 'manual']) || !has(self.search) || !has(self.search.space)"
            " || self.search.space == 'domains'",
            message="methods without a search only produce domain weights: use space domains",
            field=".search.space",
            check=lambda s: s.method not in ("madmix", "uniform", "manual") or s.search.space in (None, "domains"),
        ),
        Rule(
            cel="!has(self.search) || !has(self.search.conceptCentroidsFrom)"
            " || (self.method in ['mixatlas', 'madmix+mixatlas', 'random', 'regression']"
            " && (!has(self.search.space) || self.search.space != 'domains'))",
            message="concept centroids serve cell spaces only: a method that searches, with space factorized or full",
            field=".search.conceptCentroidsFrom",
            check=lambda s: (
                s.search.concept_centroids_from is None or (s.method in SEARCH_METHODS and s.search.space != "domains")
            ),
        ),
        Rule(
            cel="!has(self.search) || !has(self.search.warmStartFrom) || size(self.search.warmStartFrom) == 0"
            " || self.method in ['mixatlas', 'madmix+mixatlas', 'random', 'regression']",
            message="imported trials serve methods that search",
            field=".search.warmStartFrom",
            check=lambda s: not s.search.warm_start_from or s.method in SEARCH_METHODS,
        ),
    )


class TrialCounts(ApiModel):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0
    progress: str = Field(default="0/0", description="Finished (succeeded + failed) over the budget.")
    failed_ids: list[str] = Field(default_factory=list, description="The failed trials (each has had its event).")


class BestTrial(ApiModel):
    id: str
    objective: float
    weights: dict[str, float]


class ArtifactRefs(ApiModel):
    root: str | None = None
    report: str | None = None


class MixtureSearchStatus(ApiModel):
    phase: Phase = Phase.PENDING
    message: str = ""
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    round: int = 0
    trials: TrialCounts = Field(default_factory=TrialCounts)
    best_trial: BestTrial | None = None
    madmix_weights: dict[str, float] | None = None
    final_weights: dict[str, float] | None = None
    final_objective: float | None = None
    artifacts: ArtifactRefs = Field(default_factory=ArtifactRefs)
    start_time: datetime | None = None
    completion_time: datetime | None = None


class MixtureSearch(ApiModel):
    api_version: Literal["mixtura.dev/v1alpha1"] = "mixtura.dev/v1alpha1"
    kind: Literal["MixtureSearch"] = "MixtureSearch"
    metadata: ObjectMeta
    spec: MixtureSearchSpec
    status: MixtureSearchStatus | None = None
