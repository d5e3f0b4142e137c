"""MixtureSearch: one experiment that finds the mixture of a DomainSet's domains."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from mixtura_operator.api.base import (
    DATA_URI_PATTERN,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    LABEL_VALUE,
    QUALIFIED_NAME,
    QUANTITY,
    URI_MAX,
    ApiModel,
    Condition,
    ObjectMeta,
    Rule,
    no_traversal,
)
from mixtura_operator.api.early_stopping import EarlyStopping
from mixtura_operator.api.prior_runs import PriorRuns

Method = Literal["madmix", "mixatlas", "madmix+mixatlas", "uniform", "manual", "random", "regression"]
# The methods that propose and train trials; the others only produce domain weights.
SEARCH_METHODS = ("mixatlas", "madmix+mixatlas", "random", "regression")
Space = Literal["domains", "factorized", "full"]
Schedule = Literal["async", "rounds"]
NAME_PATTERN = DNS_LABEL
# What `torch.manual_seed` and numpy's legacy seeding both take.
SEED_MAX = 2**32 - 1
# What may change once a search exists (the rest of spec is immutable, by a CEL transition rule per field):
# suspend, and budget, whose own rules let only maxTrials change (upwards).
MUTABLE_SEARCH_FIELDS = ("suspend", "budget")


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
    name: str = Field(pattern=NAME_PATTERN, max_length=63)


# The config keys each backend reads, for the embedding model and for the proxy and target VLMs. Anything
# else is refused: a misspelt key would otherwise be ignored and the run silently use the default.
MODEL_CONFIG_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("tiny", "embedding"): ("image", "text", "video"),
    ("tiny", "vlm"): ("preset", "vision", "lm", "max_text_tokens", "image_pool", "video_frames", "video_pool"),
    ("hf", "embedding"): ("dtype", "attn_implementation", "video_frames", "layer", "embed_batch_size"),
    ("hf", "vlm"): ("dtype", "attn_implementation", "gradient_checkpointing", "video_frames"),
}
# Test-only fault injection: the proxy-train step fails the named trials.
FAULT_KEYS = ("failTrials",)
TINY_PRESETS = ("proxy", "target")
_FREE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_COUNT = {"type": "integer", "minimum": 1}
# Every key typed, so that the API server refuses unknown ones (strict field validation names them) and CEL can
# ask which are set; what each backend and role may use is checked by the rules on `Models`.
CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "preset": {"type": "string", "enum": list(TINY_PRESETS)},
        **dict.fromkeys(("vision", "lm", "image", "text", "video"), _FREE),
        **dict.fromkeys(("max_text_tokens", "image_pool", "video_frames", "video_pool", "embed_batch_size"), _COUNT),
        "dtype": {"type": "string", "enum": ["float32", "bfloat16", "float16"]},
        "attn_implementation": {"type": "string"},
        "gradient_checkpointing": {"type": "boolean"},
        "layer": {"type": "integer"},
        "failTrials": {"type": "array", "items": {"type": "string"}},
    },
}
_ALL_KEYS = tuple(CONFIG_SCHEMA["properties"])


class ModelSpec(ApiModel):
    """A model the jobs build: tiny (built in, random weights from the config) or hf (a transformers checkpoint)."""

    backend: Literal["tiny", "hf"] = "tiny"
    path: str | None = Field(
        default=None,
        min_length=1,
        max_length=URI_MAX,
        description="Checkpoint: a local path, file:// or s3:// URI; hf: a save_pretrained directory (required), "
        "tiny: a model.pt the tiny backend saved (optional; random weights without).",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra=CONFIG_SCHEMA,
        description="Backend settings. tiny VLM: preset (proxy | target; default: the model's role), vision, lm, "
        "max_text_tokens, image_pool, video_frames, video_pool; tiny embedding: image, text, video; hf: dtype, "
        "attn_implementation, gradient_checkpointing (VLMs), video_frames, layer and embed_batch_size (embedding).",
    )

    rules = (
        Rule(
            cel="self.backend != 'hf' || has(self.path)",
            message="the hf backend loads a save_pretrained directory: give a local path or s3:// URI",
            field=".path",
            check=lambda m: m.backend != "hf" or m.path is not None,
        ),
        no_traversal("path"),
    )

    def known_keys(self, role: str) -> tuple[str, ...]:
        keys = MODEL_CONFIG_KEYS[(self.backend, "embedding" if role == "embedding" else "vlm")]
        return keys + FAULT_KEYS if role == "proxy" else keys

    def config_error(self, role: str) -> str | None:
        """What is wrong with `config` for this backend in `role` (embedding, proxy or target), if anything."""
        unknown = sorted(set(self.config) - set(self.known_keys(role)))
        if unknown:
            known = ", ".join(self.known_keys(role))
            return f"unknown key {', '.join(unknown)} for backend {self.backend} (known: {known})"
        if self.config.get("preset", TINY_PRESETS[0]) not in TINY_PRESETS:
            return f"preset: must be one of {', '.join(TINY_PRESETS)}"
        return None


def _config_keys_rule(role: str) -> Rule:
    """Refuses config keys that the role's backend does not read (the schema refuses keys nobody reads)."""

    def none_of(backend: str) -> str:
        unused = [k for k in _ALL_KEYS if k not in ModelSpec(backend=backend, path="x").known_keys(role)]
        return " && ".join(f"!has(self.{role}.config.{key})" for key in unused)

    known = "; ".join(f"{b}: {', '.join(ModelSpec(backend=b, path='x').known_keys(role))}" for b in ("tiny", "hf"))
    return Rule(
        cel=f"!has(self.{role}) || !has(self.{role}.config) || "
        f"(self.{role}.backend == 'hf' ? ({none_of('hf')}) : ({none_of('tiny')}))",
        message=f"a key this backend does not read (known keys, {known})",
        field=f".{role}.config",
        check=lambda m: getattr(m, role).config_error(role) is None,
        explain=lambda m: getattr(m, role).config_error(role),
    )


class Models(ApiModel):
    """The embedding model (MaD-Mix, concepts), the trials' proxy VLM and the final training's target VLM."""

    embedding: ModelSpec = Field(default_factory=ModelSpec)
    proxy: ModelSpec = Field(default_factory=ModelSpec)
    target: ModelSpec = Field(default_factory=ModelSpec)

    rules = tuple(_config_keys_rule(role) for role in ("embedding", "proxy", "target"))


class MadmixSettings(ApiModel):
    lambda_: float = Field(default=1.0, gt=0, le=1e6, alias="lambda")
    temperature: float = Field(default=1.0, gt=0, le=1e6)
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
        max_length=63,
        description="An earlier MixtureSearch in this namespace whose concept centroids this search reuses, so "
        "that both corpora are mapped onto the same concepts.",
    )
    warm_start_from: list[Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]] = Field(
        default_factory=list,
        description="Earlier MixtureSearches in this namespace over the same domains or cells: their finished "
        "trials are this search's first observations (the search waits for them to finish).",
    )
    acquisition: Literal["ucb"] = "ucb"
    beta: float = Field(default=2.0, gt=0, le=1e6, description="UCB exploration weight (schedule constant).")
    beta_schedule: Literal["constant", "srinivas"] = "constant"
    seed: int = Field(default=0, ge=0, le=SEED_MAX)
    # Muennighoff et al. (2023), data-constrained scaling: up to ~4 epochs, repeated data is worth almost as
    # much as new data.
    max_repetition: float = Field(
        default=4.0,
        ge=1,
        le=1000,
        description="The most epochs of a cell's samples a training run may draw: caps each cell's weight.",
    )
    early_stopping: EarlyStopping | None = Field(
        default=None, description="Stops proxy trials whose held-out curve falls behind (median or asha)."
    )
    prior_runs: PriorRuns | None = Field(
        default=None, description="A recorded swarm (CSV) whose runs are the search's first observations."
    )
    schedule: Schedule = Field(
        default="async",
        description="async: every slot that frees (a trial finished, failed or stopped) gets a proposal at once, "
        "conditioned on the trials still running; rounds: a batch of parallelTrials waits for its slowest trial.",
    )
    repeat_top: int = Field(
        default=0,
        ge=0,
        le=64,
        description="After maxTrials, rerun the best k trials' mixtures with new init seeds (the seed noise, "
        "and the GP's observation noise, come from their spread) before the final pick.",
    )


class Budget(ApiModel):
    max_trials: int = Field(
        default=16, ge=1, le=10_000, description="May be raised later: the search, even a Succeeded one, goes on."
    )
    parallel_trials: int = Field(default=4, ge=1, le=256)
    max_failed_trials: int = Field(
        default=3,
        ge=0,
        le=10_000,
        description="The search fails when more trials than this have failed (Katib's semantics).",
    )
    proxy_steps: int = Field(default=60, ge=1, le=1_000_000)

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
    key: str | None = Field(default=None, pattern=QUALIFIED_NAME, max_length=317)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(default=None, pattern=LABEL_VALUE, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0, le=31_536_000)

    # The pod API's own toleration rules, so that a Job is never refused for them after the search began.
    rules = (
        Rule(
            cel="!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
            message="must be empty when operator is Exists",
            field=".value",
            check=lambda t: t.operator != "Exists" or not t.value,
        ),
        Rule(
            cel="has(self.key) || (has(self.operator) && self.operator == 'Exists')",
            message="a toleration without a key must have operator Exists",
            field=".operator",
            check=lambda t: t.key is not None or t.operator == "Exists",
        ),
        Rule(
            cel="!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            message="only tolerations with effect NoExecute take tolerationSeconds",
            field=".tolerationSeconds",
            check=lambda t: t.toleration_seconds is None or t.effect == "NoExecute",
        ),
    )


class JobResources(ApiModel):
    image: str | None = Field(
        default=None,
        pattern=r"^[^\s]+$",
        max_length=512,
        description="Jobs image; default: the operator's MIXTURA_JOBS_IMAGE. A cluster's admission policy may "
        "restrict it (chart value admission.allowedImages).",
    )
    gpus_per_job: int = Field(default=1, ge=0, le=64)
    cpu: str = Field(default="2", pattern=QUANTITY, max_length=32, description="CPU request (a quantity).")
    memory: str = Field(
        default="8Gi", pattern=QUANTITY, max_length=32, description="Memory request and limit (a quantity)."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        json_schema_extra={"additionalProperties": {"type": "string", "maxLength": 63}},
    )
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    queue_name: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        max_length=63,
        description="Kueue LocalQueue (a label value on the Jobs); Jobs are created suspended.",
    )
    backoff_limit: int = Field(default=2, ge=0, le=20)
    active_deadline_seconds: int | None = Field(default=None, ge=1, le=31_536_000)
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=31_536_000,
        description="Seconds a finished Job is kept; default 3600 (results live in the store, not in the Job).",
    )

    rules = (
        Rule(
            cel=f"!has(self.nodeSelector) || self.nodeSelector.all(k, k.matches(r'{QUALIFIED_NAME}')"
            f" && self.nodeSelector[k].matches(r'{LABEL_VALUE}'))",
            message="keys must be label keys and values label values",
            field=".nodeSelector",
            check=lambda r: all(
                re.match(QUALIFIED_NAME, k) and re.match(LABEL_VALUE, v) for k, v in r.node_selector.items()
            ),
        ),
    )


class Artifacts(ApiModel):
    uri: str = Field(pattern=DATA_URI_PATTERN, max_length=URI_MAX)
    endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#@]+(/[^\s]*)?$",
        max_length=URI_MAX,
        description="S3 endpoint for S3-compatible stores: http(s), no credentials in the URL.",
    )
    credentials_secret: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN,
        max_length=253,
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. A cluster's admission policy may "
        "restrict it (chart value admission.allowedCredentialSecrets).",
    )
    policy: Literal["Retain", "Delete"] = "Retain"

    rules = (no_traversal("uri"),)


class MergeMixSettings(ApiModel):
    r: int = Field(default=4, ge=0, le=1024, description="Tokens merged per layer.")
    alpha: float = Field(default=1.0, gt=0, le=1e6, description="Beta(alpha, alpha) of the mixing ratio.")
    beta: float = Field(default=1.0, gt=0, le=1e6, description="SimPO temperature.")
    weight: float = Field(default=1.0, ge=0, le=1e6, description="Weight of the SimPO term.")
    detach_loser: bool = False
    lambda_rescale: bool = False


class Augmentation(ApiModel):
    type: Literal["none", "mergemix"] = "none"
    mergemix: MergeMixSettings = Field(default_factory=MergeMixSettings)


class Training(ApiModel):
    """The trainer's settings for proxy trials and final training (AdamW, linear warm-up, cosine decay)."""

    augmentation: Augmentation = Field(default_factory=Augmentation)
    batch_size: int = Field(default=16, ge=1, le=4096)
    learning_rate: float = Field(default=3e-3, gt=0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="The cosine decay ends at learningRate x this.")
    warmup_steps: int = Field(default=5, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    grad_clip: float = Field(default=1.0, gt=0, description="Gradient norm clip.")
    eval_batch_size: int = Field(default=64, ge=1, le=4096)

    def trainer_config(self) -> dict[str, Any]:
        """These settings under the trainer's own names (`trainer.DEFAULT_CONFIG`)."""
        return {
            "batch_size": self.batch_size,
            "lr": self.learning_rate,
            "min_lr_ratio": self.min_lr_ratio,
            "warmup_steps": self.warmup_steps,
            "weight_decay": self.weight_decay,
            "grad_clip": self.grad_clip,
            "eval_batch_size": self.eval_batch_size,
        }


Baseline = Literal["uniform", "manual", "madmix"]


class Trainer(ApiModel):
    """The user's own trainer, run instead of the built-in one under the trainer contract
    (docs/trainer-contract.md): the mixture and budget in environment variables, metrics.json then _SUCCESS out."""

    image: str | None = Field(default=None, min_length=1, description="Trainer image; default: the jobs image.")
    command: list[str] = Field(min_length=1, description="Container command (the entrypoint).")
    args: list[str] = Field(default_factory=list, description="Arguments after the command.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")


class Objective(ApiModel):
    """What a trial is judged by: one metric of its metrics.json, to minimise or maximise. A per-domain metric
    (a mapping of domain to value) is averaged over the domains, weighted by `domainWeights` when given."""

    metric: str = Field(default="heldout_loss", pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$", max_length=128)
    goal: Literal["minimize", "maximize"] = "minimize"
    domain_weights: dict[str, float] = Field(
        default_factory=dict,
        max_length=256,
        description="Weight of each domain in the average of a per-domain metric; empty: every domain, equally.",
    )

    rules = (
        Rule(
            cel="!has(self.domainWeights) || (self.domainWeights.all(k, self.domainWeights[k] >= 0.0)"
            " && (size(self.domainWeights) == 0 || self.domainWeights.exists(k, self.domainWeights[k] > 0.0)))",
            message="weights must be non-negative, and not all zero",
            field=".domainWeights",
            check=lambda o: (
                all(w >= 0 for w in o.domain_weights.values())
                and (not o.domain_weights or any(w > 0 for w in o.domain_weights.values()))
            ),
        ),
    )


class FinalTraining(ApiModel):
    enabled: bool = True
    steps: int = Field(default=200, ge=1, le=10_000_000)
    trainer: Trainer | None = Field(default=None, description="Trains the target model; default: spec.trainer.")
    # None rather than []: an empty list would be in every spec's wire form and change every local run's uid.
    compare_with: list[Baseline] | None = Field(
        default=None,
        max_length=3,
        description="Baseline mixtures the target model is also trained on (same steps, seed and settings), "
        "so the report and status can say how many steps the chosen mixture saves.",
    )
    nodes: int = Field(default=1, ge=1, le=256, description="Nodes (pods) the final training runs on.")
    gpus_per_node: int | None = Field(
        default=None,
        ge=0,
        le=16,
        description="GPUs per node, one process each under torchrun; default: resources.gpusPerJob. 0 runs one "
        "CPU process per node.",
    )
    strategy: Literal["ddp", "fsdp"] = Field(
        default="ddp", description="ddp replicates the model on every process; fsdp shards it (and its checkpoints)."
    )
    gradient_accumulation: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Micro-batches per optimizer step. training.batchSize is the global batch: each process takes "
        "batchSize / (nodes x processes per node x gradientAccumulation) samples per micro-batch.",
    )
    checkpoint_every: int = Field(
        default=0,
        ge=0,
        le=10_000_000,
        description="Steps between checkpoints to the store (torch.distributed.checkpoint); a restarted Job "
        "resumes from the latest. 0: no checkpoints, a restarted Job starts again from step 0.",
    )
    keep_checkpoints: int = Field(default=2, ge=1, le=100, description="Checkpoints kept; older ones are deleted.")
    launcher: Literal["job", "jobset"] = Field(
        default="job",
        description="job: an Indexed Job with a headless Service (several nodes); jobset: a JobSet, which needs "
        "the JobSet CRD in the cluster.",
    )

    rules = (
        Rule(
            cel="!has(self.compareWith) || self.compareWith.all(b, self.compareWith.exists_one(c, c == b))",
            message="must not repeat a baseline",
            field=".compareWith",
            check=lambda f: f.compare_with is None or len(set(f.compare_with)) == len(f.compare_with),
        ),
    )


def _cel_or(parent: str, field: str, default: int) -> str:
    """An optional integer of the spec in CEL: the API server does not default nested objects that a manifest
    leaves out, so absent means the pydantic default."""
    return f"(has(self.{parent}) && has(self.{parent}.{field}) ? self.{parent}.{field} : {default})"


def _cel_processes(gpus: str) -> str:
    return f"({gpus} > 0 ? {gpus} : 1)"


_BATCH = _cel_or("training", "batchSize", 16)
_STEPS = _cel_or("budget", "proxySteps", 60)
_NODES = _cel_or("finalTraining", "nodes", 1)
_ACCUMULATION = _cel_or("finalTraining", "gradientAccumulation", 1)
_PROXY_PROCS = _cel_processes(_cel_or("resources", "gpusPerJob", 1))
_FINAL_PROCS = (
    f"(has(self.finalTraining) && has(self.finalTraining.gpusPerNode) ? "
    f"{_cel_processes('self.finalTraining.gpusPerNode')} : {_PROXY_PROCS})"
)


def _below_proxy_steps(name: str, attr: str, why: str) -> Rule:
    """A step setting of spec.search.earlyStopping, when given, must come before the proxy trials end."""

    def check(spec: MixtureSearchSpec) -> bool:
        value = None if spec.search.early_stopping is None else getattr(spec.search.early_stopping, attr)
        return value is None or value < spec.budget.proxy_steps

    return Rule(
        cel=f"!has(self.search) || !has(self.search.earlyStopping) || !has(self.search.earlyStopping.{name})"
        f" || self.search.earlyStopping.{name} < {_STEPS}",
        message=f"must be below budget.proxySteps: {why}",
        field=f".search.earlyStopping.{name}",
        check=check,
    )


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
    trainer: Trainer | None = Field(
        default=None, description="Runs the proxy trials (and the final training); default: the built-in trainer."
    )
    objective: Objective = Field(
        default_factory=Objective,
        description="What trials are judged by (default: held-out loss averaged over the domains, minimised).",
    )

    def proxy_processes(self) -> int:
        """Processes of a trial (one per GPU under torchrun, one on CPU)."""
        return max(self.resources.gpus_per_job, 1)

    def final_processes_per_node(self) -> int:
        gpus = self.final_training.gpus_per_node
        return self.proxy_processes() if gpus is None else max(gpus, 1)

    def final_world_size(self) -> int:
        return self.final_training.nodes * self.final_processes_per_node()

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
            cel="!has(self.training) || !has(self.training.augmentation)"
            " || self.training.augmentation.type != 'mergemix' || !has(self.models)"
            " || ((!has(self.models.proxy) || self.models.proxy.backend == 'tiny')"
            " && (!has(self.models.target) || self.models.target.backend == 'tiny'))",
            message="mergemix merges tokens in the tiny backend's CLIP tower: the proxy and target need backend tiny",
            field=".training.augmentation",
            check=lambda s: (
                s.training.augmentation.type != "mergemix"
                or (s.models.proxy.backend == "tiny" and s.models.target.backend == "tiny")
            ),
        ),
        Rule(
            cel=f"{_BATCH} % ({_NODES} * {_FINAL_PROCS} * {_ACCUMULATION}) == 0 && {_BATCH} % {_PROXY_PROCS} == 0",
            message="must divide evenly among the processes: finalTraining.nodes x processes per node x "
            "gradientAccumulation, and resources.gpusPerJob for the proxies",
            field=".training.batchSize",
            check=lambda s: (
                s.training.batch_size % (s.final_world_size() * s.final_training.gradient_accumulation) == 0
                and s.training.batch_size % s.proxy_processes() == 0
            ),
        ),
        Rule(
            cel="!has(self.search) || !has(self.search.warmStartFrom) || size(self.search.warmStartFrom) == 0"
            " || self.method in ['mixatlas', 'madmix+mixatlas', 'random', 'regression']",
            message="imported trials serve methods that search",
            field=".search.warmStartFrom",
            check=lambda s: not s.search.warm_start_from or s.method in SEARCH_METHODS,
        ),
        *(
            Rule(
                cel=f"!has(self.search) || !has(self.search.{name})"
                " || self.method in ['mixatlas', 'madmix+mixatlas', 'random', 'regression']",
                message=f"{what} serve methods that search",
                field=f".search.{name}",
                check=lambda s, attr=attr: getattr(s.search, attr) is None or s.method in SEARCH_METHODS,
            )
            for name, attr, what in (
                ("earlyStopping", "early_stopping", "stopped trials"),
                ("priorRuns", "prior_runs", "imported runs"),
            )
        ),
        _below_proxy_steps("minResource", "min_resource", "a trial at the full budget has no rung left to pass"),
        _below_proxy_steps("evalEvery", "eval_every", "no curve is reported before the trial ends"),
    )


class TrialCounts(ApiModel):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    stopped: int = Field(default=0, description="Trials stopped early (spec.search.earlyStopping): not failures.")
    running: int = 0
    pending: int = 0
    progress: str = Field(default="0/0", description="Finished (succeeded + failed + stopped) over the budget.")
    failed_ids: list[str] = Field(default_factory=list, description="The failed trials (each has had its event).")
    stopped_ids: list[str] = Field(default_factory=list, description="The stopped trials (each has had its event).")


class BestTrial(ApiModel):
    id: str
    objective: float = Field(description="The trial's value of spec.objective (status.objective names it).")
    weights: dict[str, float]


class BaselineComparison(ApiModel):
    """The target model trained on a baseline mixture against the chosen one."""

    baseline: Baseline
    objective: float = Field(description="The baseline's final held-out loss.")
    steps_ratio: float | None = Field(
        default=None,
        description="Steps the chosen mixture needs to reach the baseline's final held-out loss, over the "
        "baseline's steps (0.5: twice as fast); absent when it never does.",
    )


# Below this leave-one-out rank correlation the trials do not explain the objective: condition
# SurrogateUnreliable.
UNRELIABLE_LOO_SPEARMAN = 0.3


class SurrogateFit(ApiModel):
    """How well the GP surrogate predicts trials it did not see (leave-one-out)."""

    loo_r2: float
    loo_spearman: float

    @property
    def reliable(self) -> bool:
        return self.loo_spearman >= UNRELIABLE_LOO_SPEARMAN


class ArtifactRefs(ApiModel):
    root: str | None = None
    report: str | None = None
    model: str | None = Field(
        default=None,
        description="The final model: the tiny backend's final/model.pt, or the hf backend's save_pretrained "
        "directory final/model/ (none when a user's trainer ran the final training).",
    )


class MixtureSearchStatus(ApiModel):
    phase: Phase = Phase.PENDING
    message: str = ""
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    round: int = 0
    trials: TrialCounts = Field(default_factory=TrialCounts)
    objective: str | None = Field(default=None, description="What bestTrial.objective measures, e.g. min heldout_loss.")
    best_trial: BestTrial | None = None
    madmix_weights: dict[str, float] | None = None
    final_weights: dict[str, float] | None = None
    final_objective: float | None = None
    comparison: list[BaselineComparison] = Field(default_factory=list)
    surrogate: SurrogateFit | None = None
    artifacts: ArtifactRefs = Field(default_factory=ArtifactRefs)
    start_time: datetime | None = None
    completion_time: datetime | None = None


class MixtureSearch(ApiModel):
    api_version: Literal["mixtura.dev/v1alpha1"] = "mixtura.dev/v1alpha1"
    kind: Literal["MixtureSearch"] = "MixtureSearch"
    metadata: ObjectMeta
    spec: MixtureSearchSpec
    status: MixtureSearchStatus | None = None
