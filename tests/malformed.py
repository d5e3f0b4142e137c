"""Malformed manifests, each with the field its error must name, and well-formed ones near them: refused and
accepted by `mixtura validate` and by the real API server alike (tests/test_api.py,
tests/test_operator_e2e.py)."""

from __future__ import annotations

import copy


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
# Accepted: a search block without a space means domains for the methods that do not search.
WELL_FORMED: list[tuple[str, dict]] = [
    ("madmix, search block without space", search(method="madmix", search={"seed": 1})),
    ("manual, no search block", search(method="manual")),
    ("factorized with reused concepts", search(search={"space": "factorized", "conceptCentroidsFrom": "first"})),
    ("regression in the full space", search(method="regression", search={"space": "full", "maxRepetition": 16})),
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
