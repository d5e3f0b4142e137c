"""The Helm chart, offline: lint, rendering, least-privilege RBAC, a hardened pod, CRD copies, the schema."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from testbed.cluster import REPO, build_binaries

CHART = REPO / "charts" / "mixtura"
NAMESPACE = "mixtura-system"


def sets(*values: str) -> tuple[str, ...]:
    return tuple(arg for value in values for arg in ("--set", value))


ALL_FEATURES = sets(
    "rbac.clusterWide=true",
    "metrics.serviceMonitor.enabled=true",
    "alerts.enabled=true",
    "grafana.dashboard.enabled=true",
)
ALWAYS = {"ServiceAccount", "Role", "RoleBinding", "Service", "Deployment"}
CLUSTER_RBAC = {"ClusterRole", "ClusterRoleBinding"}
ALERTS = {
    "MixturaSearchFailed": 'mixtura_search_phase{phase="Failed"} == 1',
    "MixturaOperatorDown": 'up{job=~".*mixtura.*"} == 0',
    "MixturaReconcileErrors": "rate(mixtura_reconcile_errors_total[5m]) > 0",
    "MixturaTrialFailureRate": 'sum by (namespace, search) (mixtura_trials{state="failed"}) '
    "/ clamp_min(sum by (namespace, search) (mixtura_trials), 1) > 0.5",
}
DASHBOARD_EXPRS = {
    "mixtura_search_phase == 1",
    "sum by (state) (mixtura_trials)",
    "mixtura_best_objective",
    "histogram_quantile(0.9, sum by (le, step) (rate(mixtura_job_duration_seconds_bucket[5m])))",
    "mixtura_gpu_hours_requested_total",
    "histogram_quantile(0.99, sum by (le) (rate(mixtura_reconcile_duration_seconds_bucket[5m])))",
    'up{job=~".*mixtura.*"}',
}
WATCHED = {"mixturesearches", "domainsets"}
RULES = (
    {("mixtura.dev", r, v) for r in WATCHED for v in ("get", "list", "watch", "patch")}
    | {("mixtura.dev", f"{r}/status", "patch") for r in WATCHED}
    | {("mixtura.dev", "mixturesearches/finalizers", "update")}
    | {("batch", "jobs", v) for v in ("list", "watch", "create", "delete")}
    | {("", "pods", "list"), ("", "pods", "watch"), ("", "events", "create")}
    | {("", "services", v) for v in ("create", "delete")}
    | {("jobset.x-k8s.io", "jobsets", v) for v in ("list", "create", "delete")}
)
LEASE_RULES = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}


@dataclass
class Helm:
    binary: Path
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(self.binary), *args], capture_output=True, text=True, env=self.env, check=False)
        if check and result.returncode != 0:
            output = result.stderr + result.stdout
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{output}")
        return result

    def render(self, *args: str) -> dict[tuple[str, str], dict]:
        out = self("template", "rel", str(CHART), "--namespace", NAMESPACE, *args).stdout
        docs = [d for d in yaml.safe_load_all(out) if d]
        objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        assert len(objects) == len(docs), "two objects of one kind share a name"
        return objects


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    try:
        return build_binaries()
    except RuntimeError as error:
        pytest.skip(f"!!! HELM COULD NOT BE BUILT — chart tests skipped !!!\n{error}")


@pytest.fixture(scope="module")
def helm(bin_dir, tmp_path_factory) -> Helm:
    home = tmp_path_factory.mktemp("helm-home")
    # Helm keeps config and caches under these; keep them out of the user's home.
    dirs = {var: str(home / var.lower()) for var in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME")}
    return Helm(bin_dir / "helm", {**os.environ, **dirs})


def one(objects: dict[tuple[str, str], dict], kind: str) -> dict:
    found = [o for (k, _), o in objects.items() if k == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def rule_triples(role: dict) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
@pytest.mark.parametrize("features", [(), ALL_FEATURES], ids=["defaults", "all-features"])
def test_lint_is_clean(helm, strict, features):
    result = helm("lint", str(CHART), *(["--strict"] if strict else []), *features)
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("args", "kinds"),
    [
        ((), ALWAYS),
        (sets("rbac.clusterWide=true"), ALWAYS | CLUSTER_RBAC),
        (sets("metrics.serviceMonitor.enabled=true"), ALWAYS | {"ServiceMonitor"}),
        (sets("alerts.enabled=true"), ALWAYS | {"PrometheusRule"}),
        (sets("grafana.dashboard.enabled=true"), ALWAYS | {"ConfigMap"}),
        (
            (*ALL_FEATURES, "--kube-version", "1.32.0"),
            ALWAYS | CLUSTER_RBAC | {"ServiceMonitor", "PrometheusRule", "ConfigMap"},
        ),
    ],
    ids=["defaults", "cluster-wide", "service-monitor", "alerts", "dashboard", "all-kube-1.32"],
)
def test_renders(helm, args, kinds):
    objects = helm.render(*args)
    assert {kind for kind, _ in objects} == kinds
    for (kind, _), obj in objects.items():
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "rel"
        if not kind.startswith("Cluster"):
            assert obj["metadata"]["namespace"] == NAMESPACE


def test_older_kubernetes_is_refused(helm):
    result = helm("template", "rel", str(CHART), "--kube-version", "1.27.0", check=False)
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr


def test_crds_are_installed_from_crds_dir(helm):
    out = helm("template", "rel", str(CHART), "--include-crds").stdout
    crds = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "CustomResourceDefinition"]
    names = {crd["metadata"]["name"] for crd in crds}
    assert names == {"mixturesearches.mixtura.dev", "domainsets.mixtura.dev"}


def test_chart_crds_are_byte_copies_of_generated_crds():
    generated = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    copied = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert generated, "no generated CRDs in crds/"
    fix = "run: cp crds/*.yaml charts/mixtura/crds/"
    assert copied.keys() == generated.keys(), fix
    stale = [name for name in generated if copied[name] != generated[name]]
    assert not stale, f"charts/mixtura/crds/ differ from crds/ in {stale}; {fix}"


def test_deployment_runs_the_operator_hardened(helm):
    objects = helm.render()
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())

    assert deployment["spec"]["replicas"] == 1
    assert container["image"] == f"ghcr.io/mixtura/operator:{chart['appVersion']}"
    assert container["command"] == ["mixtura", "operator"]
    assert container["args"] == ["--namespace", NAMESPACE, "--metrics-port", "8080", "--health-port", "8081"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # Standbys (replicas > 1) are alive but not ready until they lead.
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 8080, "health": 8081}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]

    env = {e["name"]: e for e in container["env"]}
    assert env["MIXTURA_JOBS_IMAGE"]["value"] == f"ghcr.io/mixtura/jobs:{chart['appVersion']}"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MIXTURA_S3_ENDPOINT"} & env.keys()

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    assert {v["name"]: v for v in pod["volumes"]}[mount["name"]] == {"name": mount["name"], "emptyDir": {}}

    service = one(objects, "Service")
    (port,) = service["spec"]["ports"]
    assert port == {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_deployment_takes_values(helm):
    values = sets(
        "replicas=2",
        "image.repository=registry.example/mixtura",
        "image.tag=dev",
        "jobsImage=registry.example/jobs:dev",
        "metrics.port=9090",
        "health.port=9091",
        "artifacts.credentialsSecret=s3-credentials",
        "artifacts.endpointUrl=http://minio.storage:9000",
    )
    deployment = one(helm.render(*values), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}

    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == "registry.example/mixtura:dev"
    assert container["args"][2:] == ["--metrics-port", "9090", "--health-port", "9091"]
    assert env["MIXTURA_JOBS_IMAGE"]["value"] == "registry.example/jobs:dev"
    assert env["MIXTURA_S3_ENDPOINT"]["value"] == "http://minio.storage:9000"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "s3-credentials", "key": key}


def test_namespaced_rbac_is_least_privilege(helm):
    objects = helm.render()
    assert not any(kind.startswith("Cluster") for kind, _ in objects)
    roles = {name: rule_triples(role) for (kind, name), role in objects.items() if kind == "Role"}
    assert sorted(roles.values(), key=len) == [LEASE_RULES, RULES]
    bindings = [b for (kind, _), b in objects.items() if kind == "RoleBinding"]
    assert {b["roleRef"]["name"] for b in bindings} == set(roles)
    account = one(objects, "ServiceAccount")["metadata"]["name"]
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]


def test_cluster_wide_rbac_watches_all_namespaces(helm):
    objects = helm.render("--set", "rbac.clusterWide=true")
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "--all-namespaces" and "--namespace" not in container["args"]
    cluster_role = one(objects, "ClusterRole")
    assert rule_triples(cluster_role) == RULES | {("", "namespaces", v) for v in ("list", "watch")}
    role_ref = one(objects, "ClusterRoleBinding")["roleRef"]
    assert (role_ref["kind"], role_ref["name"]) == ("ClusterRole", cluster_role["metadata"]["name"])
    # The Lease stays namespaced even when everything else is cluster-wide.
    assert rule_triples(one(objects, "Role")) == LEASE_RULES


@pytest.mark.parametrize("cluster_wide", ["false", "true"])
def test_rbac_has_no_wildcards_and_no_secrets(helm, cluster_wide):
    objects = helm.render("--set", f"rbac.clusterWide={cluster_wide}")
    roles = [o for (kind, _), o in objects.items() if kind in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        for group, resource, verb in rule_triples(role):
            assert "*" not in (group, resource, verb), role["metadata"]["name"]
            assert resource.split("/")[0] not in ("secrets", "configmaps", "serviceaccounts"), resource
            assert verb not in ("escalate", "bind", "impersonate"), verb


@pytest.mark.parametrize("cluster_wide", ["false", "true"])
def test_rbac_reads_only_the_secrets_searches_may_name(helm, cluster_wide):
    """The operator reads a search's Secret (its data check and artifacts), by name: the admission allowlist."""
    objects = helm.render(*sets(f"rbac.clusterWide={cluster_wide}", "admission.allowedCredentialSecrets={a,b.c}"))
    kind = "ClusterRole" if cluster_wide == "true" else "Role"
    role = next(o for (k, _), o in objects.items() if k == kind and o["metadata"]["name"] == "rel-mixtura")
    secrets = [rule for rule in role["rules"] if "secrets" in rule["resources"]]
    assert secrets == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a", "b.c"], "verbs": ["get"]}]
    assert rule_triples({"rules": [r for r in role["rules"] if r not in secrets]}) >= RULES


def test_service_monitor_scrapes_the_metrics_service(helm):
    objects = helm.render(
        *sets("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prometheus")
    )
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = one(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "mixtura"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True


def test_alerts(helm):
    rule = one(helm.render("--set", "alerts.enabled=true"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    (group,) = rule["spec"]["groups"]
    assert group["name"] == "mixtura"
    alerts = {r["alert"]: r for r in group["rules"]}
    assert {name: r["expr"] for name, r in alerts.items()} == ALERTS
    assert alerts["MixturaOperatorDown"]["for"] == "5m"
    assert alerts["MixturaReconcileErrors"]["for"] == "10m"
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())


def test_alerts_file_passes_promtool(bin_dir):
    argv = [str(bin_dir / "promtool"), "check", "rules", str(CHART / "files" / "alerts.yaml")]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr + result.stdout


def test_dashboard(helm):
    config_map = one(helm.render("--set", "grafana.dashboard.enabled=true"), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config_map["data"].values()
    dashboard = json.loads(text)
    assert dashboard == json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = {t["expr"] for panel in dashboard["panels"] for t in panel["targets"]}
    assert exprs == DASHBOARD_EXPRS
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


@pytest.mark.parametrize(
    "value",
    [
        "replicas=-1",
        "image.repository=",
        "image.pullPolicy=Sometimes",
        "metrics.port=70000",
        "rbac.clusterWide=yes",
        "metrics.serviceMonitor.interval=often",
        "artifacts.endpointUrl=minio:9000",
        "artifacts.credentialsSecret=Not_A_Name",
        "replica=2",
    ],
)
def test_schema_rejects_bad_values(helm, value):
    result = helm("template", "rel", str(CHART), "--set", value, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert value.split("=")[0].split(".")[-1] in result.stderr, result.stderr


def test_metrics_and_health_ports_must_differ(helm):
    result = helm("template", "rel", str(CHART), "--set", "health.port=8080", check=False)
    assert result.returncode != 0
    assert "metrics.port and health.port must differ" in result.stderr


VAP = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"


def test_admission_policy_is_installed_where_the_api_server_serves_it(helm):
    """Issue 19: the policy needs Kubernetes 1.30+; the chart still installs (without it) on 1.28 and 1.29."""
    assert not [k for k, _ in helm.render() if k.startswith("ValidatingAdmissionPolicy")]
    objects = helm.render("--api-versions", VAP, *sets("admission.allowedCredentialSecrets={creds}"))
    policy, binding = one(objects, "ValidatingAdmissionPolicy"), one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": NAMESPACE
    }
    expressions = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert "file://" in expressions and '["creds"]' in expressions
    local = helm.render("--api-versions", VAP, *sets("admission.allowLocalURIs=true", "rbac.clusterWide=true"))
    assert "file://" not in json.dumps(one(local, "ValidatingAdmissionPolicy")["spec"]["validations"])
    assert one(local, "ValidatingAdmissionPolicyBinding")["spec"]["matchResources"]["namespaceSelector"] == {}
