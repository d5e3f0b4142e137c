"""Issue 20: what a step's Job runs when spec.trainer brings the user's own trainer."""

from __future__ import annotations

import json

from malformed import search
from mixtura_operator import trainer_contract as contract
from mixtura_operator.api.mixturesearch import MixtureSearch
from mixtura_operator.executors.kubernetes import job_manifest
from mixtura_operator.reconcile import CreateJob

URI = "s3://bucket/runs/ns/find/uid"
TRAINER = {"image": "team/trainer:1", "command": ["python", "train.py"], "args": ["--fast"], "env": {"LR": "0.1"}}


def make(**spec) -> MixtureSearch:
    s = MixtureSearch.model_validate(search(method="random", search={"seed": 2}, **spec))
    s.metadata.uid = "uid"
    return s


def pod(s: MixtureSearch, job: CreateJob) -> dict:
    return job_manifest(s, job, URI)["spec"]["template"]["spec"]


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


def test_a_trial_runs_the_users_trainer_with_the_contracts_variables():
    s = make(trainer=TRAINER, artifacts={"uri": "s3://bucket/runs", "credentialsSecret": "s3"})
    (container,) = pod(s, CreateJob("trial/007", ("--trial", "007"), gpus=1))["containers"]
    assert container["image"] == "team/trainer:1" and container["command"] == ["python", "train.py", "--fast"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    variables = env(container)
    assert variables["LR"] == "0.1" and variables["AWS_ACCESS_KEY_ID"] is None  # from the Secret, by reference
    assert {k: variables[k] for k in (contract.MIXTURE_URI, contract.OUTPUT_URI, contract.SEED, contract.STEPS)} == {
        contract.MIXTURE_URI: f"{URI}/trials/007/mixture.json",
        contract.OUTPUT_URI: f"{URI}/trials/007",
        contract.SEED: str(contract.trial_seed(2)),
        contract.STEPS: "60",
    }
    assert variables[contract.ASSIGNMENTS_URI] == f"{URI}/cells/assignments"
    assert json.loads(variables[contract.MODEL_CONFIG]) == {}


def test_the_final_training_picks_the_mixture_first_then_runs_its_own_trainer():
    final = {"steps": 9, "trainer": {"command": ["train-big"]}}
    spec = make(trainer=TRAINER, finalTraining=final)
    template = pod(spec, CreateJob("final", gpus=2))
    (init,) = template["initContainers"]
    assert init["command"][3:5] == ["final-pick", "--search-uri"]
    assert "nvidia.com/gpu" not in init["resources"]["limits"]
    (main,) = template["containers"]
    assert main["command"] == ["train-big"] and main["image"] != "team/trainer:1"
    assert env(main)[contract.MIXTURE_URI] == f"{URI}/final/mixture.json" and env(main)[contract.STEPS] == "9"


def test_without_a_trainer_the_steps_run_the_jobs_cli():
    template = pod(make(), CreateJob("trial/000", ("--trial", "000")))
    assert "initContainers" not in template
    assert template["containers"][0]["command"][:4] == ["python", "-m", "mixtura_jobs", "proxy-train"]
    assert contract.trainer_for(make(trainer=TRAINER).spec, "embed/digits") is None
