"""Resource models: CRDs generated and current, manifests validated with field paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from malformed import CLUSTER, CORPUS_S3, CROSS, DUPLICATE, MALFORMED, RAW, WELL_FORMED, domainset, search
from mixtura_operator.api import crdgen
from mixtura_operator.api.manifests import ManifestError, load, parse
from mixtura_operator.api.mixturesearch import SearchSettings
from mixtura_operator.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_crd_files_are_current():
    for name, crd in crdgen.crds().items():
        assert (REPO / "crds" / name).read_text() == crdgen.render(crd), f"crds/{name} is stale: run `mixtura crds`"


def test_chart_crds_are_the_same_files():
    chart = REPO / "charts" / "mixtura" / "crds"
    if not chart.exists():
        pytest.skip("the chart is not there yet")
    for name in crdgen.crds():
        assert (chart / name).read_text() == (REPO / "crds" / name).read_text()


def test_schemas_are_structural():
    """No refs, unions or boolean additionalProperties: what the API server requires of a CRD schema."""

    def walk(node, path="$"):
        if isinstance(node, dict):
            assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
            assert not isinstance(node.get("additionalProperties"), bool), path
            if "properties" in node:
                assert node.get("type") == "object", path
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    for crd in crdgen.crds().values():
        walk(crd["spec"]["versions"][0]["schema"])


def test_valid_examples_parse():
    bundle = load(REPO / "examples" / "demo.yaml")
    (demo,) = bundle.searches
    assert bundle.domainset_for(demo).spec.domains[0].name == "digits"
    parse(domainset())
    parse(search())


@pytest.mark.parametrize(
    ("what", "manifest", "field"), [*MALFORMED, DUPLICATE], ids=lambda v: v if isinstance(v, str) else ""
)
def test_malformed_manifest_names_the_field(what, manifest, field):
    with pytest.raises(ManifestError) as error:
        parse(manifest)
    assert f": {field}: " in str(error.value) or f": {field}" in str(error.value), str(error.value)


@pytest.mark.parametrize(("what", "manifest"), WELL_FORMED, ids=lambda v: v if isinstance(v, str) else "")
def test_well_formed_manifests_parse(what, manifest):
    parse(manifest)


def test_space_defaults_to_factorized_for_searches_and_domains_otherwise():
    assert parse(search()).spec.search.space is None
    assert (
        "default for methods that search" in crdgen.object_schema(SearchSettings)["properties"]["space"]["description"]
    )


def test_reused_concepts_come_from_an_earlier_search_in_the_file(tmp_path, capsys):
    later = search(search={"conceptCentroidsFrom": "second"})
    second = search(method="random")
    second["metadata"]["name"] = "second"
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([domainset(), later, second]))
    assert main(["run", str(path)]) == 2
    assert "MixtureSearch/find: spec.search.conceptCentroidsFrom: no MixtureSearch 'second' before it" in (
        capsys.readouterr().err
    )
    bundle = load(path)
    assert bundle.concepts_from(bundle.searches[1]) is None


def test_cli_exits_2_naming_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all([domainset(), search(budget={"maxTrials": 2, "parallelTrials": 4})]))
    assert main(["run", str(bad)]) == 2
    assert "spec.budget.parallelTrials: must be <= maxTrials" in capsys.readouterr().err


def test_missing_domainset_reference_is_reported(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(search()))
    assert main(["validate", str(bad)]) == 2
    assert "spec.domainSetRef.name" in capsys.readouterr().err


def _validate(tmp_path, text: str | bytes, capsys, *flags: str) -> tuple[int, list[str]]:
    path = tmp_path / "manifest.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    code = main(["validate", *flags, str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()


@pytest.mark.parametrize(("what", "text", "named"), RAW, ids=lambda v: v if isinstance(v, str) and len(v) < 60 else "")
def test_validate_refuses_unreadable_files_in_one_line(tmp_path, capsys, what, text, named):
    code, lines = _validate(tmp_path, text, capsys)
    assert code == 2 and len(lines) == 1 and named in lines[0], lines


@pytest.mark.parametrize(
    ("what", "manifest", "field", "validate"), CLUSTER, ids=lambda v: v if isinstance(v, str) else ""
)
def test_validate_cluster_refuses_local_files(tmp_path, capsys, what, manifest, field, validate):
    text = yaml.safe_dump_all([manifest] if manifest["kind"] == "DomainSet" else [CORPUS_S3, manifest])
    assert _validate(tmp_path, text, capsys)[0] == 0
    code, lines = _validate(tmp_path, text, capsys, "--cluster")
    if validate:
        assert code == 2 and any(f": {field}" in line for line in lines), lines
    else:
        assert code == 0, lines


@pytest.mark.parametrize(("what", "text", "field"), CROSS, ids=lambda v: v if isinstance(v, str) else "")
def test_validate_checks_rules_across_objects(tmp_path, capsys, what, text, field):
    code, lines = _validate(tmp_path, text, capsys)
    assert code == 2 and any(f": {field}" in line for line in lines), lines


def test_validate_takes_secrets_and_other_kinds(tmp_path, capsys):
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
    }
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "notes"}, "data": {"a": "b"}}
    text = yaml.safe_dump_all(
        [secret, CORPUS_S3, search(artifacts={"uri": "s3://bucket/r", "credentialsSecret": "creds"}), config]
    )
    code, lines = _validate(tmp_path, text, capsys, "--cluster")
    assert code == 0, lines


def test_wire_input_is_strict_and_by_wire_name():
    with pytest.raises(ManifestError, match=r"spec.budget.maxTrials: Input should be a valid integer"):
        parse(search(budget={"maxTrials": "20"}))
    with pytest.raises(ManifestError, match=r"spec.budget.max_trials: Extra inputs are not permitted"):
        parse(search(budget={"max_trials": 20}))
    assert parse(search(budget={"maxTrials": 20})).spec.budget.max_trials == 20


def test_corpus_size():
    """Issue 19's acceptance: at least 100 hostile or malformed manifests, at least 10 valid edge cases."""
    assert len(MALFORMED) + 1 + len(RAW) + len(CLUSTER) + len(CROSS) >= 100
    assert len(WELL_FORMED) >= 10
