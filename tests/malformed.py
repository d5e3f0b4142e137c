"""The hostile-input corpus: malformed manifests, each with the field its error must name, and well-formed ones
near them (tests/test_api.py, tests/test_operator_e2e.py).

- MALFORMED (+ DUPLICATE): refused by `mixtura validate` and by the real API server (the CRD schemas) alike.
- RAW: files no object can be read from (encodings, YAML bombs, nesting, documents that are not objects):
  `mixtura validate` refuses each in one line, exit 2; `kubectl` refuses them before or at the API server.
- CLUSTER: valid for `mixtura run`, refused on a cluster: by the chart's ValidatingAdmissionPolicy at the API
  server and by `mixtura validate --cluster` (file:// URIs, local weights), or by the policy alone (images and
  Secrets outside the chart's allowed lists).
- CROSS: only knowledge of other objects can refuse them: `mixtura validate`, and the operator with a condition.
- WELL_FORMED: edge cases both accept.
"""

from __future__ import annotations

import copy
from typing import Any


def domainset(**spec_changes) -> dict:
    doc = {
        "apiVersion": "mixtura.dev/v1alpha1",
        "kind": "DomainSet",
        "metadata": {"name": "corpus"},
        "spec": {
            "domains": [
                {
                    "name": "digits",
                    "uri": "file:///data/digits",
                    "modalities": ["image", "text"],
                    "taskType": "captioning",
                },
                {"name": "prose", "uri": "s3://bucket/prose", "modalities": ["text"], "taskType": "text"},
            ]
        },
    }
    doc["spec"].update(spec_changes)
    return doc


def search(**spec_changes) -> dict:
    doc = {
        "apiVersion": "mixtura.dev/v1alpha1",
        "kind": "MixtureSearch",
        "metadata": {"name": "find"},
        "spec": {"domainSetRef": {"name": "corpus"}, "artifacts": {"uri": "s3://bucket/runs"}},
    }
    for key, value in spec_changes.items():
        doc["spec"][key] = value
    return doc


def _domain(index: int, **changes) -> dict:
    doc = domainset()
    doc["spec"]["domains"][index].update(changes)
    return doc


def _set(doc: dict, path: str, value: Any) -> dict:
    """`doc` with the value at a dotted path (`spec.budget.maxTrials`) replaced, parents made as needed."""
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return doc


def named(name: Any) -> dict:
    return _set(search(), "metadata.name", name)


def resources(**changes) -> dict:
    return search(resources=changes)


def artifacts(**changes) -> dict:
    return search(artifacts={"uri": "s3://bucket/runs", **changes})


def _toleration(what: str, field: str, **toleration) -> tuple[str, dict, str]:
    return what, resources(tolerations=[toleration]), f"spec.resources.tolerations[0].{field}"


def _nested(depth: int) -> dict:
    node: dict = {"leaf": 1}
    for _ in range(depth):
        node = {"a": node}
    return node


def _duplicate() -> dict:
    doc = domainset()
    doc["spec"]["domains"].append(copy.deepcopy(doc["spec"]["domains"][0]))
    return doc


# (description, manifest, field path the error must name)
MALFORMED: list[tuple[str, dict, str]] = [
    (
        "parallel > max trials",
        search(budget={"maxTrials": 4, "parallelTrials": 8}),
        "spec.budget.parallelTrials",
    ),
    ("unknown method", search(method="bandit"), "spec.method"),
    ("negative manual weight", _domain(0, weight=-0.5), "spec.domains[0].weight"),
    ("data URI not s3/file", _domain(1, uri="http://example.com/x"), "spec.domains[1].uri"),
    ("no modalities", _domain(0, modalities=[]), "spec.domains[0].modalities"),
    ("unknown modality", _domain(0, modalities=["audio"]), "spec.domains[0].modalities[0]"),
    ("unknown task type", _domain(0, taskType="segmentation"), "spec.domains[0].taskType"),
    ("text task with images", _domain(1, modalities=["image", "text"]), "spec.domains[1].modalities"),
    ("zero max trials", search(budget={"maxTrials": 0}), "spec.budget.maxTrials"),
    ("non-positive lambda", search(madmix={"lambda": 0}), "spec.madmix.lambda"),
    ("too few concept clusters", search(search={"conceptClusters": 1}), "spec.search.conceptClusters"),
    ("bad artifact URI", search(artifacts={"uri": "ftp://x"}), "spec.artifacts.uri"),
    ("negative GPUs", search(resources={"gpusPerJob": -1}), "spec.resources.gpusPerJob"),
    ("bad domain name", _domain(0, name="Has_Caps"), "spec.domains[0].name"),
    ("madmix with a cell space", search(method="madmix", search={"space": "full"}), "spec.search.space"),
    ("max repetition below 1", search(search={"maxRepetition": 0.5}), "spec.search.maxRepetition"),
    (
        "concept source not a name",
        search(search={"conceptCentroidsFrom": "Other_Search"}),
        "spec.search.conceptCentroidsFrom",
    ),
    (
        "concept source for domain weights",
        search(method="random", search={"space": "domains", "conceptCentroidsFrom": "first"}),
        "spec.search.conceptCentroidsFrom",
    ),
    (
        "concept source without a search",
        search(method="uniform", search={"conceptCentroidsFrom": "first"}),
        "spec.search.conceptCentroidsFrom",
    ),
    (
        "median stopping with asha's settings",
        search(search={"earlyStopping": {"type": "median", "reductionFactor": 2}}),
        "spec.search.earlyStopping.minResource",
    ),
    (
        "asha's first rung at the full budget",
        search(budget={"proxySteps": 20}, search={"earlyStopping": {"type": "asha", "minResource": 20}}),
        "spec.search.earlyStopping.minResource",
    ),
    (
        "early stopping without a search",
        search(method="uniform", search={"earlyStopping": {"type": "median"}}),
        "spec.search.earlyStopping",
    ),
    (
        "prior runs whose target is a weight column",
        search(search={"priorRuns": {"uri": "s3://swarms/runs.csv", "weightColumns": ["digits", "y"], "target": "y"}}),
        "spec.search.priorRuns.target",
    ),
    (
        "prior runs naming a weight column twice",
        search(search={"priorRuns": {"uri": "s3://swarms/runs.csv", "weightColumns": ["a", "a"], "target": "y"}}),
        "spec.search.priorRuns.weightColumns",
    ),
    (
        "unknown model config key",
        search(models={"proxy": {"config": {"presett": "proxy"}}}),
        "spec.models.proxy.config",
    ),
    (
        "tiny key for an hf model",
        search(models={"target": {"backend": "hf", "path": "s3://models/x", "config": {"preset": "target"}}}),
        "spec.models.target.config",
    ),
    ("hf model without a path", search(models={"embedding": {"backend": "hf"}}), "spec.models.embedding.path"),
    ("unknown tiny preset", search(models={"target": {"config": {"preset": "huge"}}}), "spec.models.target.config"),
    ("zero batch size", search(training={"batchSize": 0}), "spec.training.batchSize"),
    (
        "a global batch the final processes cannot split",
        search(training={"batchSize": 12}, finalTraining={"nodes": 2, "gpusPerNode": 4}),
        "spec.training.batchSize",
    ),
    (
        "a global batch the proxy's GPUs cannot split",
        search(training={"batchSize": 9}, resources={"gpusPerJob": 2}, finalTraining={"gpusPerNode": 0}),
        "spec.training.batchSize",
    ),
    ("an unknown strategy", search(finalTraining={"strategy": "deepspeed"}), "spec.finalTraining.strategy"),
    (
        "mergemix with an hf model",
        search(
            models={"proxy": {"backend": "hf", "path": "s3://models/p"}},
            training={"augmentation": {"type": "mergemix"}},
        ),
        "spec.training.augmentation",
    ),
    (
        "a baseline twice",
        search(finalTraining={"compareWith": ["uniform", "madmix", "uniform"]}),
        "spec.finalTraining.compareWith",
    ),
    ("unknown baseline", search(finalTraining={"compareWith": ["regmix"]}), "spec.finalTraining.compareWith[0]"),
    ("trainer without a command", search(trainer={"image": "team/trainer:1"}), "spec.trainer.command"),
    ("unknown objective goal", search(objective={"goal": "maximise"}), "spec.objective.goal"),
    (
        "negative objective domain weight",
        search(objective={"domainWeights": {"digits": -1, "prose": 1}}),
        "spec.objective.domainWeights",
    ),
    (
        "all-zero objective domain weights",
        search(objective={"domainWeights": {"digits": 0}}),
        "spec.objective.domainWeights",
    ),
]

# Issue 19: names, types, bounds, URIs, resources a Job carries. Grouped as the README counts them.
NAMES: list[tuple[str, dict, str]] = [
    ("search name of 64 characters", named("a" * 64), "metadata.name"),
    ("search name with dots", named("my.search"), "metadata.name"),
    ("search name with capitals", named("Find"), "metadata.name"),
    ("search name ending in a dash", named("find-"), "metadata.name"),
    ("search name with an underscore", named("find_it"), "metadata.name"),
    ("DomainSet name with dots", _set(domainset(), "metadata.name", "my.corpus"), "metadata.name"),
    ("DomainSet name of 64 characters", _set(domainset(), "metadata.name", "c" * 64), "metadata.name"),
    ("domain name of 41 characters", _domain(0, name="d" * 41), "spec.domains[0].name"),
    ("domain name with a dot", _domain(0, name="dig.its"), "spec.domains[0].name"),
    ("domain name empty", _domain(0, name=""), "spec.domains[0].name"),
    ("DomainSet reference with dots", search(domainSetRef={"name": "a.b"}), "spec.domainSetRef.name"),
    ("DomainSet reference of 64 characters", search(domainSetRef={"name": "r" * 64}), "spec.domainSetRef.name"),
    ("queue name with a slash", resources(queueName="team/queue"), "spec.resources.queueName"),
    ("queue name of 64 characters", resources(queueName="q" * 64), "spec.resources.queueName"),
    ("credentials Secret with capitals", artifacts(credentialsSecret="S3_Creds"), "spec.artifacts.credentialsSecret"),
    ("credentials Secret with a slash", artifacts(credentialsSecret="ns/creds"), "spec.artifacts.credentialsSecret"),
    (
        "credentials Secret of 254 characters",
        artifacts(credentialsSecret="s" * 254),
        "spec.artifacts.credentialsSecret",
    ),
    (
        "concept source of 64 characters",
        search(search={"conceptCentroidsFrom": "c" * 64}),
        "spec.search.conceptCentroidsFrom",
    ),
    ("node selector key with a space", resources(nodeSelector={"gpu type": "a100"}), "spec.resources.nodeSelector"),
    ("node selector value with a slash", resources(nodeSelector={"gpu": "a/100"}), "spec.resources.nodeSelector"),
    ("node selector value of 64 characters", resources(nodeSelector={"gpu": "v" * 64}), "spec.resources.nodeSelector"),
    _toleration("toleration key with a space", "key", key="a b", operator="Exists"),
    _toleration("toleration value with Exists", "value", key="gpu", operator="Exists", value="x"),
    _toleration("toleration without key nor Exists", "operator", value="x", operator="Equal"),
    _toleration(
        "toleration seconds without NoExecute", "tolerationSeconds", key="gpu", operator="Exists", tolerationSeconds=5
    ),
    _toleration("toleration with an unknown effect", "effect", key="gpu", operator="Exists", effect="Evict"),
    _toleration("toleration value with a space", "value", key="gpu", value="a b"),
]
TYPES: list[tuple[str, dict, str]] = [
    ("max trials as a string", search(budget={"maxTrials": "20"}), "spec.budget.maxTrials"),
    ("max trials as a float", search(budget={"maxTrials": 2.5}), "spec.budget.maxTrials"),
    ("max trials as a bool", search(budget={"maxTrials": True}), "spec.budget.maxTrials"),
    ("parallel trials as a list", search(budget={"parallelTrials": [2]}), "spec.budget.parallelTrials"),
    ("lambda as a string", search(madmix={"lambda": "1.0"}), "spec.madmix.lambda"),
    (
        "final training enabled as a string",
        search(finalTraining={"enabled": "yes please"}),
        "spec.finalTraining.enabled",
    ),
    ("method as a list", search(method=["madmix"]), "spec.method"),
    ("budget as a string", search(budget="16 trials"), "spec.budget"),
    ("spec as a list", _set(search(), "spec", [1, 2]), "spec"),
    ("domains as an object", domainset(domains={"name": "digits"}), "spec.domains"),
    ("modalities as a string", _domain(0, modalities="image"), "spec.domains[0].modalities"),
    ("weight as a string", _domain(0, weight="0.5"), "spec.domains[0].weight"),
    ("samples as a float", _domain(0, samples=9.5), "spec.domains[0].samples"),
    ("image as a number", resources(image=7), "spec.resources.image"),
    ("GPUs as a string", resources(gpusPerJob="1"), "spec.resources.gpusPerJob"),
    ("node selector value as a number", resources(nodeSelector={"gpu": 100}), "spec.resources.nodeSelector.gpu"),
    ("tolerations as an object", resources(tolerations={"key": "gpu"}), "spec.resources.tolerations"),
    ("model config as a list", search(models={"proxy": {"config": ["tiny"]}}), "spec.models.proxy.config"),
    ("Python field name max_trials", search(budget={"max_trials": 4}), "spec.budget.max_trials"),
    (
        "Python field name domain_set_ref",
        _set(search(), "spec.domain_set_ref", {"name": "corpus"}),
        "spec.domain_set_ref",
    ),
    ("Python field name lambda_", search(madmix={"lambda_": 2.0}), "spec.madmix.lambda_"),
    ("unknown field in budget", search(budget={"maxTrails": 4}), "spec.budget.maxTrails"),
    ("unknown field in a domain", _domain(0, weigth=1.0), "spec.domains[0].weigth"),
    ("deep nesting under a typed field", search(budget={"maxTrials": _nested(40)}), "spec.budget.maxTrials"),
]
BOUNDS: list[tuple[str, dict, str]] = [
    ("seed beyond torch.manual_seed", search(search={"seed": 2**64}), "spec.search.seed"),
    ("seed of 2^32", search(search={"seed": 2**32}), "spec.search.seed"),
    ("negative seed", search(search={"seed": -1}), "spec.search.seed"),
    ("proxy steps 10^12", search(budget={"proxySteps": 10**12}), "spec.budget.proxySteps"),
    ("zero proxy steps", search(budget={"proxySteps": 0}), "spec.budget.proxySteps"),
    ("max trials 10^6", search(budget={"maxTrials": 10**6, "parallelTrials": 4}), "spec.budget.maxTrials"),
    ("parallel trials 1000", search(budget={"maxTrials": 5000, "parallelTrials": 1000}), "spec.budget.parallelTrials"),
    ("max failed trials 10^6", search(budget={"maxFailedTrials": 10**6}), "spec.budget.maxFailedTrials"),
    ("final steps 10^9", search(finalTraining={"steps": 10**9}), "spec.finalTraining.steps"),
    ("samples per domain 10^6", search(madmix={"samplesPerDomain": 10**6}), "spec.madmix.samplesPerDomain"),
    ("temperature 10^9", search(madmix={"temperature": 1e9}), "spec.madmix.temperature"),
    ("zero temperature", search(madmix={"temperature": 0}), "spec.madmix.temperature"),
    ("beta 10^9", search(search={"beta": 1e9}), "spec.search.beta"),
    ("65 concept clusters", search(search={"conceptClusters": 65}), "spec.search.conceptClusters"),
    ("max repetition 10^4", search(search={"maxRepetition": 10**4}), "spec.search.maxRepetition"),
    ("65 GPUs per job", resources(gpusPerJob=65), "spec.resources.gpusPerJob"),
    ("backoff limit 21", resources(backoffLimit=21), "spec.resources.backoffLimit"),
    ("zero active deadline", resources(activeDeadlineSeconds=0), "spec.resources.activeDeadlineSeconds"),
    ("TTL of ten years", resources(ttlSecondsAfterFinished=315_360_000), "spec.resources.ttlSecondsAfterFinished"),
    ("negative TTL", resources(ttlSecondsAfterFinished=-1), "spec.resources.ttlSecondsAfterFinished"),
    ("33 tolerations", resources(tolerations=[{"operator": "Exists"}] * 33), "spec.resources.tolerations"),
    (
        "33 node selector labels",
        resources(nodeSelector={f"k{i}": "v" for i in range(33)}),
        "spec.resources.nodeSelector",
    ),
    (
        "257 domains",
        domainset(
            domains=[
                {"name": f"d{i}", "uri": f"s3://bucket/d{i}", "modalities": ["text"], "taskType": "text"}
                for i in range(257)
            ]
        ),
        "spec.domains",
    ),
    ("four modalities", _domain(0, modalities=["image", "text", "video", "image"]), "spec.domains[0].modalities"),
    ("repeated modality", _domain(0, modalities=["image", "image"]), "spec.domains[0].modalities"),
    ("manual weight 10^9", _domain(0, weight=1e9), "spec.domains[0].weight"),
    ("negative samples", _domain(0, samples=-5), "spec.domains[0].samples"),
    (
        "MergeMix r of 10^4",
        search(training={"augmentation": {"type": "mergemix", "mergemix": {"r": 10**4}}}),
        "spec.training.augmentation.mergemix.r",
    ),
    ("unknown preset", search(models={"proxy": {"config": {"preset": "huge"}}}), "spec.models.proxy.config"),
    (
        "65 model config keys",
        search(models={"target": {"config": {f"k{i}": i for i in range(65)}}}),
        "spec.models.target.config",
    ),
    ("unknown augmentation", search(training={"augmentation": {"type": "cutmix"}}), "spec.training.augmentation.type"),
    ("unknown policy", artifacts(policy="Purge"), "spec.artifacts.policy"),
    ("unknown score", search(madmix={"score": "entropy"}), "spec.madmix.score"),
    ("unknown beta schedule", search(search={"betaSchedule": "cosine"}), "spec.search.betaSchedule"),
    ("memory in bytes with a unit typo", resources(memory="16GB"), "spec.resources.memory"),
    ("memory negative", resources(memory="-1Gi"), "spec.resources.memory"),
    ("cpu with a space", resources(cpu="2 cores"), "spec.resources.cpu"),
]
URIS: list[tuple[str, dict, str]] = [
    ("artifact URI with .. segments", artifacts(uri="s3://bucket/../../x"), "spec.artifacts.uri"),
    ("artifact URI with percent-encoded ..", artifacts(uri="s3://bucket/runs/%2e%2e/other"), "spec.artifacts.uri"),
    ("artifact URI with a space", artifacts(uri="s3://bucket/my runs"), "spec.artifacts.uri"),
    ("artifact URI of 1025 characters", artifacts(uri="s3://bucket/" + "x" * 1013), "spec.artifacts.uri"),
    ("artifact URI http", artifacts(uri="http://bucket/runs"), "spec.artifacts.uri"),
    ("artifact URI with an uppercase bucket", artifacts(uri="s3://Bucket/runs"), "spec.artifacts.uri"),
    ("domain URI with .. segments", _domain(1, uri="s3://bucket/data/../../secrets"), "spec.domains[1].uri"),
    ("domain URI file with ..", _domain(0, uri="file:///data/../etc/shadow"), "spec.domains[0].uri"),
    ("domain URI javascript", _domain(0, uri="javascript:alert(1)"), "spec.domains[0].uri"),
    ("endpoint javascript", artifacts(endpointUrl="javascript:alert(1)"), "spec.artifacts.endpointUrl"),
    ("endpoint file", artifacts(endpointUrl="file:///etc/passwd"), "spec.artifacts.endpointUrl"),
    ("endpoint with credentials", artifacts(endpointUrl="http://user:pass@minio:9000"), "spec.artifacts.endpointUrl"),
    ("endpoint without a host", artifacts(endpointUrl="https://"), "spec.artifacts.endpointUrl"),
    ("endpoint with a space", artifacts(endpointUrl="http://minio :9000"), "spec.artifacts.endpointUrl"),
    (
        "model weights with ..",
        search(models={"target": {"path": "s3://bucket/models/../../x"}}),
        "spec.models.target.path",
    ),
    ("model weights empty", search(models={"proxy": {"path": ""}}), "spec.models.proxy.path"),
    ("image of blanks", resources(image="   "), "spec.resources.image"),
    ("image with a newline", resources(image="jobs:1\nrm -rf /"), "spec.resources.image"),
    ("image of 513 characters", resources(image="i" * 513), "spec.resources.image"),
]
MALFORMED += NAMES + TYPES + BOUNDS + URIS

# Accepted: a search block without a space means domains for the methods that do not search.
WELL_FORMED: list[tuple[str, dict]] = [
    ("madmix, search block without space", search(method="madmix", search={"seed": 1})),
    ("manual, no search block", search(method="manual")),
    ("factorized with reused concepts", search(search={"space": "factorized", "conceptCentroidsFrom": "first"})),
    ("regression in the full space", search(method="regression", search={"space": "full", "maxRepetition": 16})),
    (
        "hf proxy and target, trainer settings",
        search(
            models={
                "embedding": {"backend": "hf", "path": "s3://models/proxy", "config": {"layer": 12}},
                "proxy": {"backend": "hf", "path": "s3://models/proxy", "config": {"dtype": "bfloat16"}},
                "target": {"backend": "hf", "path": "s3://models/target", "config": {"gradient_checkpointing": True}},
            },
            training={"batchSize": 8, "learningRate": 1e-5, "warmupSteps": 50},
        ),
    ),
    ("every baseline", search(finalTraining={"compareWith": ["uniform", "manual", "madmix"]})),
    (
        "two nodes of four GPUs, fsdp, checkpoints",
        search(
            training={"batchSize": 64},
            finalTraining={
                "nodes": 2,
                "gpusPerNode": 4,
                "strategy": "fsdp",
                "gradientAccumulation": 2,
                "checkpointEvery": 500,
                "keepCheckpoints": 3,
                "launcher": "jobset",
            },
        ),
    ),
    (
        "own trainer, maximised weighted objective",
        search(
            trainer={"image": "team/trainer:1", "command": ["python", "train.py"], "env": {"LR": "0.001"}},
            finalTraining={"trainer": {"command": ["python", "train_big.py"]}},
            objective={"metric": "accuracy", "goal": "maximize", "domainWeights": {"digits": 2, "prose": 1}},
        ),
    ),
]
DUPLICATE = ("duplicate domain names", _duplicate(), "spec.domains")


def _yaml(*documents: dict) -> str:
    import yaml

    return yaml.safe_dump_all(list(documents))


_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
        for i in range(8)
    ]
)
# Files, not objects: (description, file bytes, what the one-line refusal must name).
RAW: list[tuple[str, bytes, str]] = [
    ("not UTF-8", b"kind: MixtureSearch\nmetadata: {name: caf\xe9}\n", "not UTF-8"),
    ("UTF-16 with a BOM", "kind: DomainSet\n".encode("utf-16"), "not UTF-8"),
    ("top-level scalar", b"just a string\n", "document 1"),
    ("top-level number", b"42\n", "document 1"),
    ("top-level list", b"- kind: MixtureSearch\n- kind: DomainSet\n", "document 1"),
    (
        "metadata as a string",
        b"apiVersion: mixtura.dev/v1alpha1\nkind: MixtureSearch\nmetadata: find\nspec: {}\n",
        "metadata",
    ),
    (
        "metadata name as a list",
        b"apiVersion: mixtura.dev/v1alpha1\nkind: DomainSet\nmetadata: {name: [a]}\n",
        "metadata.name",
    ),
    ("kind as a list", b"apiVersion: mixtura.dev/v1alpha1\nkind: [MixtureSearch]\nmetadata: {name: x}\n", "kind"),
    ("kind missing", b"apiVersion: mixtura.dev/v1alpha1\nmetadata: {name: x}\n", "kind"),
    ("apiVersion as a number", b"apiVersion: 1\nkind: MixtureSearch\nmetadata: {name: x}\n", "apiVersion"),
    (
        "unknown mixtura.dev kind",
        b"apiVersion: mixtura.dev/v1alpha1\nkind: MixtureSweep\nmetadata: {name: x}\n",
        "kind",
    ),
    (
        "billion laughs in a spec",
        (
            _BOMB.replace("\n", "\n  ").join(
                ["apiVersion: mixtura.dev/v1alpha1\nkind: MixtureSearch\nmetadata: {name: bomb}\nspec:\n  ", "\n"]
            )
        ).encode(),
        "alias bomb",
    ),
    (
        "deep flow nesting",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        "nested",
    ),
    (
        "deep nesting in a spec",
        (
            "apiVersion: mixtura.dev/v1alpha1\nkind: MixtureSearch\nmetadata: {name: deep}\nspec: "
            + "{a: " * 100
            + "1"
            + "}" * 100
            + "\n"
        ).encode(),
        "nested deeper",
    ),
    ("unclosed flow mapping", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n", "not valid YAML"),
    ("tab indentation", b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: x\n", "not valid YAML"),
    ("unhashable key", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {[1, 2]: x}\n", "not valid YAML"),
    (
        "non-string key",
        b"apiVersion: mixtura.dev/v1alpha1\nkind: MixtureSearch\nmetadata: {name: x}\nspec: {1: x}\n",
        "spec",
    ),
]
# Valid for `mixtura run`, refused on a cluster: (description, manifest, field). With `validate` they say
# whether `mixtura validate --cluster` refuses them too (the allowed images and Secrets are the chart's values).
CLUSTER: list[tuple[str, dict, str, bool]] = [
    ("artifacts in /etc/shadow", artifacts(uri="file:///etc/shadow"), "spec.artifacts.uri", True),
    ("artifacts in a local folder", artifacts(uri="file:///tmp/runs"), "spec.artifacts.uri", True),
    ("domain data from a local path", domainset(), "spec.domains[0].uri", True),
    (
        "target weights from a local path",
        search(models={"target": {"path": "/root/.ssh/id_rsa"}}),
        "spec.models.target.path",
        True,
    ),
    (
        "proxy weights from file://",
        search(models={"proxy": {"path": "file:///etc/shadow"}}),
        "spec.models.proxy.path",
        True,
    ),
    (
        "a recorded swarm from file://",
        search(search={"priorRuns": {"uri": "file:///etc/passwd", "target": "loss"}}),
        "spec.search.priorRuns.uri",
        True,
    ),
    (
        "an image outside the allowed patterns",
        resources(image="evil.example/miner:latest"),
        "spec.resources.image",
        False,
    ),
    (
        "a trainer image outside the allowed patterns",
        search(trainer={"image": "evil.example/miner:latest", "command": ["mine"]}),
        "spec.trainer.image",
        False,
    ),
    (
        "a final trainer image outside the allowed patterns",
        search(finalTraining={"trainer": {"image": "evil.example/miner:latest", "command": ["mine"]}}),
        "spec.finalTraining.trainer.image",
        False,
    ),
    (
        "a Secret outside the allowed list",
        artifacts(credentialsSecret="other-team-creds"),
        "spec.artifacts.credentialsSecret",
        False,
    ),
]
CORPUS_S3 = domainset(domains=[{**d, "uri": f"s3://bucket/{d['name']}"} for d in domainset()["spec"]["domains"]])
_NO_WEIGHTS = search(method="manual")
_SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "creds"},
    "stringData": {"AWS_ACCESS_KEY_ID": "x"},
}
# Only the other objects in the file tell: (description, file text, field).
CROSS: list[tuple[str, str, str]] = [
    ("manual method, domains without weights", _yaml(domainset(), _NO_WEIGHTS), "spec.domains[0].weight"),
    (
        "manual method, one domain without a weight",
        _yaml(_domain(0, weight=1.0), _NO_WEIGHTS),
        "spec.domains[1].weight",
    ),
    ("DomainSet not in the file", _yaml(search()), "spec.domainSetRef.name"),
    (
        "concept source not in the file",
        _yaml(domainset(), search(search={"conceptCentroidsFrom": "first"})),
        "spec.search.conceptCentroidsFrom",
    ),
    (
        "concept source after the search",
        _yaml(domainset(), search(search={"conceptCentroidsFrom": "later"}), named("later")),
        "spec.search.conceptCentroidsFrom",
    ),
    (
        "credentials Secret in the file lacks a key",
        _yaml(domainset(), artifacts(credentialsSecret="creds"), _SECRET),
        "spec.artifacts.credentialsSecret",
    ),
    ("the same search twice", _yaml(domainset(), search(), search()), "metadata.name"),
]
WELL_FORMED += [
    ("search name of 63 characters", named("a" * 63)),
    ("search name of one character", named("a")),
    ("memory 16G", resources(memory="16G")),
    ("fractional cpu and memory in Mi", resources(cpu="0.5", memory="512Mi")),
    ("milli-cpu", resources(cpu="1500m")),
    ("seed 2^32 - 1", search(search={"seed": 2**32 - 1})),
    ("float field given an integer", search(madmix={"lambda": 2, "temperature": 1})),
    ("endpoint with a port and a path", artifacts(endpointUrl="https://minio.internal:9000/s3")),
    ("dots inside a key are not ..", artifacts(uri="s3://bucket/runs/v1..2/x")),
    ("toleration Exists with no key", resources(tolerations=[{"operator": "Exists"}])),
    (
        "qualified toleration and selector keys",
        resources(
            tolerations=[
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}
            ],
            nodeSelector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
        ),
    ),
    (
        "queue name and image by digest",
        resources(queueName="team-a", image="registry.local:5000/mixtura/jobs@sha256:" + "0" * 64),
    ),
    (
        "target preset and a config override",
        search(models={"target": {"config": {"preset": "target", "lm": {"num_hidden_layers": 2}}}}),
    ),
    (
        "256 domains",
        _set(
            domainset(
                domains=[
                    {"name": f"d{i}", "uri": f"s3://bucket/d{i}", "modalities": ["text"], "taskType": "text"}
                    for i in range(256)
                ]
            ),
            "metadata.name",
            "wide",
        ),
    ),
    ("credentials Secret name with dots", artifacts(credentialsSecret="team.s3-creds")),
]
