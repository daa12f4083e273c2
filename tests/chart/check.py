#!/usr/bin/env python3
"""Checks of the Helm chart (charts/hakeeper) and the manifests generated from it (deploy/).

With Helm's own engine (helm-python-sdk wraps Helm's Go library, so no helm binary is needed):

1. the chart's metadata agrees with Cargo.toml and with what can be validated;
2. for each value set below: `helm lint --strict` at the oldest and the newest Kubernetes
   version checked; `helm template`; every object validated by kubernetes-validate --strict
   against both versions' schemas (custom resources skipped by kind, with the reason); and what
   the chart promises: hardened containers, the exact permissions hakeeper asks for at start
   (read from src/access.rs and src/operator/cmd.rs), native sidecars, probes, tokens mounted
   only where the API is used;
3. every hakeeper container's command line is parsed by the real binary (target/debug/hakeeper,
   or $HAKEEPER_BIN), when it has been built: it must get as far as connecting to Kubernetes;
4. bad value sets are rejected, with a message that names the key;
5. deploy/ is what tests/chart/render.py renders from the chart.

Prints one line per check and a closing `chart: N passed, N failed, N skipped`; exits 1 if
any check failed. Run it through tests/chart/run.sh, which installs requirements.txt.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

import helm_python as helm  # noqa: E402
import kubernetes_validate  # noqa: E402
import kubernetes_validate.utils as kv_utils  # noqa: E402
import yaml  # noqa: E402
from packaging.version import Version  # noqa: E402

from common import (  # noqa: E402
    CHART_DIR,
    NAMESPACE,
    ROOT,
    Manifest,
    consumer_chart,
    expected_deploy_files,
    notes,
    render,
)

HARDENED_USER = 65532

# Kinds that are custom resources: kubernetes-validate has no schema for them.
CUSTOM_KINDS = {
    "ServiceMonitor": "a Prometheus Operator custom resource (monitoring.coreos.com/v1)",
    "FlinkDeployment": "a flink-kubernetes-operator custom resource (flink.apache.org/v1beta1)",
}

S3 = {"endpoint": "http://minio.storage:9000", "region": "us-east-1", "pathStyle": True, "existingSecret": "hakeeper-s3", "accessKeyKey": "access-key", "secretKeyKey": "secret-key"}

# (name, chart, values): "hakeeper" is charts/hakeeper, "consumer" is tests/chart/consumer (a
# JobManager Deployment that includes the sidecar; its hakeeper values go under "hakeeper").
VALUE_SETS: list[tuple[str, str, dict[str, Any]]] = [
    ("defaults", "hakeeper", {}),
    ("watch-all-namespaces", "hakeeper", {"operator": {"watchAllNamespaces": True}}),
    ("watch-namespaces", "hakeeper", {"operator": {"watchNamespaces": ["flink-a", "flink-b", "hakeeper"]}}),
    ("flink", "hakeeper", {"flink": {"enabled": True, "config": {"state.checkpoints.dir": "s3://flink-ha/checkpoints"}}}),
    ("s3-existing-secret", "hakeeper", {"storage": {"s3": S3}, "operator": {"gc": {"enabled": True, "orphanGrace": "2h"}}, "flink": {"enabled": True}}),
    ("s3-cloud-identity", "hakeeper", {
        "storage": {"s3": {"region": "eu-west-1"}},
        "operator": {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/hakeeper"}}},
        "sidecar": {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/flink-ha"}}},
    }),
    ("alerts", "hakeeper", {"operator": {
        "alerts": {"webhooks": ["https://alerts.example.com/flink", "http://receiver.monitoring:8080/hook"], "webhookToken": {"existingSecret": "hakeeper-webhook", "key": "bearer"}, "alertmanagerUrl": "http://alertmanager.monitoring:9093"},
        "leaderlessAfter": "45s", "checkpointStallAfter": "10m", "events": False,
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "timings": {"leaseDuration": "20s", "renewDeadline": "12s", "retryPeriod": "3s"},
    }}),
    ("operator-single-no-verify", "hakeeper", {"operator": {"replicas": 1, "verify": {"enabled": False}, "extraArgs": ["--log=hakeeper=debug,info"]}, "sidecar": {"rbac": {"create": False}, "serviceAccount": {"create": False}}}),
    ("sidecar-loopback-contend", "consumer", {"hakeeper": {"sidecar": {
        "contend": ["dispatcher", "resourcemanager", "restserver"], "address": "akka.tcp://flink@$(POD_IP):6123/user/rpc/dispatcher_1",
        "livenessUrl": "http://127.0.0.1:8081/config", "clientTimeout": "8s", "ownerReference": "Deployment/analytics-jobmanager",
        "rbac": {"extraRules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]},
    }}}),
    ("sidecar-unix-token", "consumer", {"hakeeper": {"storage": {"s3": S3}, "sidecar": {"api": {"mode": "unix", "token": {"existingSecret": "analytics-api-token"}}}}}),
    ("sidecar-pod-token", "consumer", {"hakeeper": {"sidecar": {"probePort": 9191, "api": {"mode": "pod", "port": 7171, "token": {"existingSecret": "analytics-api-token"}}, "timings": {"leaseDuration": "3s", "renewDeadline": "2s", "retryPeriod": "500ms"}}}}),
    ("sidecar-automount", "consumer", {"hakeeper": {"sidecar": {"projectServiceAccountToken": False, "strictRecovery": True, "checkpointsRetained": 3}}}),
]

# (name, chart, values, what the error must name). Each must fail to render.
BAD_VALUE_SETS: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("unknown top-level key", "hakeeper", {"replicas": 2}, ["additional properties 'replicas'"]),
    ("unknown nested key", "hakeeper", {"operator": {"replica": 3}}, ["/operator", "'replica'"]),
    ("wrong type: replicas as a string", "hakeeper", {"operator": {"replicas": "two"}}, ["/operator/replicas", "want integer"]),
    ("wrong type: enabled as a string", "hakeeper", {"flink": {"enabled": "yes"}}, ["/flink/enabled", "want boolean"]),
    ("wrong type: webhooks as a string", "hakeeper", {"operator": {"alerts": {"webhooks": "https://alerts.example.com"}}}, ["/operator/alerts/webhooks", "want array"]),
    ("not a URL: webhook", "hakeeper", {"operator": {"alerts": {"webhooks": ["alerts.example.com"]}}}, ["/operator/alerts/webhooks/0"]),
    ("not a duration", "hakeeper", {"operator": {"timings": {"leaseDuration": "15 seconds", "renewDeadline": "10s", "retryPeriod": "2s"}}}, ["/operator/timings/leaseDuration"]),
    ("a number for a duration", "hakeeper", {"operator": {"gc": {"orphanGrace": 3600}}}, ["/operator/gc/orphanGrace", "want string"]),
    ("operator timings in the wrong order", "hakeeper", {"operator": {"timings": {"leaseDuration": "10s", "renewDeadline": "15s", "retryPeriod": "2s"}}}, ["operator.timings", "wrong order", "leaseDuration"]),
    ("sidecar renew deadline not above 1.2 x retry period", "hakeeper", {"sidecar": {"timings": {"leaseDuration": "15s", "renewDeadline": "2s", "retryPeriod": "2s"}}}, ["sidecar.timings", "wrong order", "renewDeadline"]),
    ("sidecar lease equal to renew deadline", "hakeeper", {"sidecar": {"timings": {"leaseDuration": "10s", "renewDeadline": "10s", "retryPeriod": "2s"}}}, ["sidecar.timings", "leaseDuration"]),
    ("a timing missing", "hakeeper", {"sidecar": {"timings": {"leaseDuration": None}}}, ["/sidecar/timings", "leaseDuration"]),
    ("serviceMonitor.enabled neither auto nor a boolean", "hakeeper", {"operator": {"serviceMonitor": {"enabled": "yes"}}}, ["/operator/serviceMonitor/enabled"]),
    ("watchAllNamespaces with watchNamespaces", "hakeeper", {"operator": {"watchAllNamespaces": True, "watchNamespaces": ["flink"]}}, ["operator.watchAllNamespaces", "operator.watchNamespaces"]),
    ("a namespace that is no DNS label", "hakeeper", {"operator": {"watchNamespaces": ["Flink_Prod"]}}, ["/operator/watchNamespaces/0"]),
    ("gc without verify", "hakeeper", {"operator": {"gc": {"enabled": True}, "verify": {"enabled": False}}}, ["operator.gc.enabled", "operator.verify.enabled"]),
    ("API on the pod network without a token", "hakeeper", {"sidecar": {"api": {"mode": "pod"}}}, ["sidecar.api.token.existingSecret"]),
    ("unknown API mode", "hakeeper", {"sidecar": {"api": {"mode": "tcp"}}}, ["/sidecar/api/mode"]),
    ("a probe port out of range", "hakeeper", {"sidecar": {"probePort": 70000}}, ["/sidecar/probePort"]),
    ("the probe port on the API port in mode pod", "consumer", {"hakeeper": {"sidecar": {"probePort": 7070, "api": {"mode": "pod", "token": {"existingSecret": "analytics-api-token"}}}}}, ["sidecar.probePort", "sidecar.api.port"]),
    ("a component that does not exist", "hakeeper", {"sidecar": {"contend": ["jobmanager"]}}, ["/sidecar/contend/0"]),
    ("a cluster id Flink refuses", "hakeeper", {"sidecar": {"clusterId": "Analytics_1"}}, ["/sidecar/clusterId"]),
    ("an S3 endpoint without a scheme", "hakeeper", {"storage": {"s3": {"endpoint": "minio:9000"}}}, ["/storage/s3/endpoint"]),
    ("wrong type in the dependency's values", "consumer", {"hakeeper": {"sidecar": {"api": {"port": "7070"}}}}, ["hakeeper", "/sidecar/api/port", "want integer"]),
    ("contend without a liveness URL", "consumer", {"hakeeper": {"sidecar": {"contend": ["dispatcher"], "address": "akka.tcp://flink@$(POD_IP):6123"}}}, ["sidecar.contend", "sidecar.livenessUrl"]),
    ("contend without an address", "consumer", {"hakeeper": {"sidecar": {"contend": ["dispatcher"], "livenessUrl": "http://127.0.0.1:8081/config"}}}, ["sidecar.contend", "sidecar.address"]),
    ("a client timeout under 100ms", "consumer", {"hakeeper": {"sidecar": {"clientTimeout": "50ms"}}}, ["sidecar.clientTimeout", "100ms"]),
    ("the sidecar without a cluster id", "consumer", {"hakeeper": {"sidecar": {"clusterId": ""}}}, ["sidecar.clusterId"]),
]


class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []
        self.skipped = 0

    def check(self, name: str, problems: list[str]) -> None:
        if problems:
            self.failed.append(name)
            print(f"FAIL {name}")
            for p in problems:
                print(f"     {p}")
        else:
            self.passed += 1
            print(f"PASS {name}")

    def skip(self, name: str, why: str) -> None:
        self.skipped += 1
        print(f"SKIP {name}: {why}")


# ---------------------------------------------------------------------------------------------
# What the source says


def permissions(path: str, const: str) -> set[tuple[str, str, str]]:
    """The (verb, group, resource) triples of a `const NAME: [Permission; N] = [...]` in src/."""
    text = (ROOT / path).read_text()
    block = re.search(rf"const {const}: \[Permission; \d+\] = \[(.*?)\];", text, re.S)
    if not block:
        raise SystemExit(f"{path}: no const {const} of permissions (has it moved?)")
    return set(re.findall(r'p\("([^"]*)",\s*"([^"]*)",\s*"([^"]*)"\)', block.group(1)))


SIDECAR = permissions("src/access.rs", "SIDECAR")
OWN = permissions("src/operator/cmd.rs", "OWN")
WATCHED = permissions("src/operator/cmd.rs", "WATCHED")
FLINK_HA = {(v, "", "configmaps") for v in ["get", "list", "watch", "create", "update", "patch", "delete"]}


def cargo_version() -> str:
    m = re.search(r'^\[package\].*?^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.S | re.M)
    if not m:
        raise SystemExit("Cargo.toml: no package version")
    return m.group(1)


# ---------------------------------------------------------------------------------------------
# Kubernetes versions


def kubernetes_versions(chart_meta: dict[str, Any]) -> tuple[str, str]:
    """The oldest version the chart claims (kubeVersion ">=X") and the newest one
    kubernetes-validate has schemas for."""
    m = re.fullmatch(r">=\s*v?(\d+\.\d+)(\.\d+)?(-0)?", str(chart_meta.get("kubeVersion", "")).strip())
    if not m:
        raise SystemExit(f"Chart.yaml kubeVersion {chart_meta.get('kubeVersion')!r}: expected a lower bound such as >=1.29.0-0")
    oldest = m.group(1)
    newest = ".".join(kv_utils.latest_version().split(".")[:2])
    return oldest, newest


def validate_schemas(manifests: list[Manifest], versions: tuple[str, str], skipped: dict[str, str]) -> list[str]:
    problems = []
    for m in manifests:
        if m.kind in CUSTOM_KINDS:
            skipped[m.kind] = CUSTOM_KINDS[m.kind]
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(m.obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problems.append(f"{m.kind}/{m.name} ({m.source}) against {version}: {path}: {e.message}")
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
                problems.append(f"{m.kind}/{m.name} ({m.source}): {e.message}")
    return problems


# ---------------------------------------------------------------------------------------------
# What the chart promises


def pod_specs(manifests: list[Manifest]) -> list[tuple[Manifest, dict[str, Any]]]:
    return [(m, m.obj["spec"]["template"]["spec"]) for m in manifests if m.kind in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def rules_of(m: Manifest) -> set[tuple[str, str, str]]:
    out = set()
    for rule in m.obj.get("rules", []):
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    out.add((verb, group, resource))
    return out


def show(perms: set[tuple[str, str, str]]) -> str:
    return ", ".join(f"{v} {r}({g or 'core'})" for v, g, r in sorted(perms, key=lambda p: (p[2], p[1], p[0])))


def check_hardening(manifests: list[Manifest]) -> list[str]:
    problems = []
    for m, spec in pod_specs(manifests):
        pod_sc = spec.get("securityContext", {})
        if pod_sc.get("runAsNonRoot") is not True or pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{m.kind}/{m.name}: the pod's securityContext lacks runAsNonRoot or seccompProfile RuntimeDefault")
        if "automountServiceAccountToken" not in spec:
            problems.append(f"{m.kind}/{m.name}: automountServiceAccountToken is not set explicitly")
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            sc = c.get("securityContext", {})
            want = {
                "runAsNonRoot": True,
                "runAsUser": HARDENED_USER,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
            }
            for key, value in want.items():
                if sc.get(key) != value:
                    problems.append(f"{m.kind}/{m.name} container {c['name']}: securityContext.{key} is {sc.get(key)!r}, not {value!r}")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{m.kind}/{m.name} container {c['name']}: capabilities do not drop ALL")
            if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{m.kind}/{m.name} container {c['name']}: no seccompProfile RuntimeDefault")
            limits = c.get("resources", {}).get("limits", {})
            requests = c.get("resources", {}).get("requests", {})
            if "memory" not in limits or "memory" not in requests or "cpu" not in requests:
                problems.append(f"{m.kind}/{m.name} container {c['name']}: no memory limit, or no cpu and memory requests")
    for m in manifests:
        if m.kind == "ServiceAccount" and "automountServiceAccountToken" not in m.obj:
            problems.append(f"ServiceAccount/{m.name}: automountServiceAccountToken is not set explicitly")
    return problems


def hakeeper_containers(manifests: list[Manifest]) -> list[tuple[Manifest, dict[str, Any], dict[str, Any]]]:
    """(workload, pod spec, container) of every container that runs the hakeeper image."""
    out = []
    for m, spec in pod_specs(manifests):
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            if c.get("args", [None])[0] in ("operator", "sidecar"):
                out.append((m, spec, c))
    return out


def check_operator(manifests: list[Manifest], values: dict[str, Any]) -> list[str]:
    op_values = values.get("operator", {})
    if op_values.get("enabled") is False:
        return []
    problems = []
    deployments = [m for m in manifests if m.kind == "Deployment" and m.name.endswith("-operator")]
    if len(deployments) != 1:
        return [f"expected one operator Deployment, found {[m.name for m in deployments]}"]
    dep = deployments[0].obj
    spec = dep["spec"]["template"]["spec"]
    replicas = op_values.get("replicas", 2)
    if dep["spec"]["replicas"] != replicas:
        problems.append(f"operator replicas {dep['spec']['replicas']}, not {replicas}")
    if spec.get("automountServiceAccountToken") is not True:
        problems.append("the operator pod does not mount its ServiceAccount token")
    terms = spec.get("affinity", {}).get("podAntiAffinity", {}).get("preferredDuringSchedulingIgnoredDuringExecution", [])
    if not any(t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname" for t in terms):
        problems.append("no preferred pod anti-affinity on kubernetes.io/hostname")
    c = spec["containers"][0]
    port = next((p for p in c.get("ports", []) if p["name"] == "admin"), None)
    if not port or port["containerPort"] != 9090:
        problems.append("no admin port 9090")
    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/livez" or c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        problems.append("the operator's probes are not /livez and /readyz")
    env = {e["name"]: e for e in c.get("env", [])}
    if env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        problems.append("POD_NAME does not come from the downward API")
    if f"--operator-namespace={NAMESPACE}" not in c["args"]:
        problems.append("--operator-namespace is not the release namespace")
    pdbs = [m for m in manifests if m.kind == "PodDisruptionBudget"]
    if replicas >= 2 and (len(pdbs) != 1 or pdbs[0].obj["spec"].get("minAvailable") != 1):
        problems.append("no PodDisruptionBudget with minAvailable 1")
    if replicas < 2 and pdbs:
        problems.append("a PodDisruptionBudget for a single replica would block node drains")
    services = [m for m in manifests if m.kind == "Service" and m.name.endswith("-operator")]
    if len(services) != 1 or services[0].obj["spec"]["ports"][0]["port"] != 9090:
        problems.append("no Service on the admin port for /metrics")
    # RBAC: OWN in the release namespace, WATCHED where it watches.
    roles = {(m.obj["metadata"].get("namespace"), m.kind, m.name): rules_of(m) for m in manifests if m.kind in ("Role", "ClusterRole")}
    own = roles.get((NAMESPACE, "Role", deployments[0].name))
    if own != OWN:
        problems.append(f"the operator's own Role grants {show(own or set())}, not OWN: {show(OWN)}")
    if op_values.get("watchAllNamespaces"):
        watched = [r for (ns, kind, _), r in roles.items() if kind == "ClusterRole"]
        if watched != [WATCHED]:
            problems.append(f"the ClusterRole grants {[show(r) for r in watched]}, not WATCHED: {show(WATCHED)}")
        if "--all-namespaces" not in c["args"]:
            problems.append("--all-namespaces is missing")
    else:
        namespaces = op_values.get("watchNamespaces") or [NAMESPACE]
        for ns in namespaces:
            if roles.get((ns, "Role", f"{deployments[0].name}-watch")) != WATCHED:
                problems.append(f"no Role with exactly WATCHED ({show(WATCHED)}) in namespace {ns}")
        if f"--namespace={','.join(namespaces)}" not in c["args"]:
            problems.append(f"--namespace does not list {namespaces}")
        if any(kind == "ClusterRole" for (_, kind, _) in roles):
            problems.append("a ClusterRole although the operator watches listed namespaces")
    bindings = [m for m in manifests if m.kind in ("RoleBinding", "ClusterRoleBinding") and m.name.startswith(deployments[0].name) or (m.kind == "ClusterRoleBinding")]
    for b in bindings:
        subject = b.obj["subjects"][0]
        if subject["name"] != spec["serviceAccountName"] or subject["namespace"] != NAMESPACE:
            problems.append(f"{b.kind}/{b.name} binds {subject}, not the operator's ServiceAccount")
    # Settings that must reach the command line.
    s3 = values.get("storage", {}).get("s3", {})
    if s3.get("existingSecret"):
        refs = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") for e in c.get("env", [])}
        if refs.get("HAKEEPER_S3_ACCESS_KEY") != s3["existingSecret"] or refs.get("HAKEEPER_S3_SECRET_KEY") != s3["existingSecret"]:
            problems.append("the S3 keys do not come from storage.s3.existingSecret")
    if op_values.get("gc", {}).get("enabled") and "--gc" not in c["args"]:
        problems.append("--gc is missing")
    token = op_values.get("alerts", {}).get("webhookToken", {}).get("existingSecret")
    if token:
        flag = next((a for a in c["args"] if a.startswith("--alert-webhook-token-file=")), None)
        mounts = {v["name"]: v["mountPath"] for v in c.get("volumeMounts", [])}
        if not flag or not flag.split("=", 1)[1].startswith(mounts.get("webhook-token", "?") + "/"):
            problems.append("--alert-webhook-token-file is not a file of the mounted Secret")
    sm = op_values.get("serviceMonitor", {}).get("enabled", "auto")
    has_sm = any(m.kind == "ServiceMonitor" for m in manifests)
    # Offline rendering serves no monitoring.coreos.com/v1, so "auto" renders none.
    if has_sm != (sm is True):
        problems.append(f"serviceMonitor.enabled {sm!r} but a ServiceMonitor is {'' if has_sm else 'not '}rendered")
    return problems


def check_jobmanager_side(manifests: list[Manifest], values: dict[str, Any]) -> list[str]:
    problems = []
    sc_values = values.get("sidecar", {})
    roles = [m for m in manifests if m.kind == "Role" and m.name.endswith("-sidecar")]
    if sc_values.get("rbac", {}).get("create", True):
        extra = set()
        for rule in sc_values.get("rbac", {}).get("extraRules", []):
            extra |= rules_of(Manifest("", "", {"rules": [rule]}))
        if len(roles) != 1 or rules_of(roles[0]) != SIDECAR | extra:
            found = show(rules_of(roles[0])) if len(roles) == 1 else f"{len(roles)} Roles"
            problems.append(f"the sidecar's Role grants {found}, not exactly SIDECAR ({show(SIDECAR)}){' and the extra rules' if extra else ''}")
    elif roles:
        problems.append("a sidecar Role although sidecar.rbac.create is false")
    for m, spec, c in hakeeper_containers(manifests):
        if c["args"][0] != "sidecar":
            continue
        where = f"{m.kind}/{m.name}"
        if c not in spec.get("initContainers", []) or c.get("restartPolicy") != "Always":
            problems.append(f"{where}: the sidecar is not a native sidecar (an init container with restartPolicy: Always)")
        mode = sc_values.get("api", {}).get("mode", "loopback")
        listen = next(a.split("=", 1)[1] for a in c["args"] if a.startswith("--listen="))
        mounts = {v["name"]: v["mountPath"] for v in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        if mode == "unix":
            if not listen.startswith("unix:/") or volumes.get("hakeeper-run", {}).get("emptyDir") is None:
                problems.append(f"{where}: mode unix does not listen on a socket in a shared emptyDir")
            jm_mounts = {v["name"] for jc in spec["containers"] for v in jc.get("volumeMounts", [])}
            if "hakeeper-run" not in jm_mounts:
                problems.append(f"{where}: the JobManager does not mount the socket's directory")
        if mode == "loopback" and not listen.startswith("127.0.0.1:"):
            problems.append(f"{where}: mode loopback listens on {listen}")
        # In every mode: --probe-listen on the pod's IP, and the sidecar's probes there.
        probe_port = sc_values.get("probePort", 9091)
        probe_listen = next((a.split("=", 1)[1] for a in c["args"] if a.startswith("--probe-listen=")), None)
        if probe_listen != f"0.0.0.0:{probe_port}":
            problems.append(f"{where}: --probe-listen is {probe_listen}, not 0.0.0.0:{probe_port}")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        if ports.get("hakeeper-probes") != probe_port:
            problems.append(f"{where}: no container port hakeeper-probes = {probe_port}")
        if (mode == "pod") != ("hakeeper-api" in ports):
            problems.append(f"{where}: the API port is declared exactly in mode pod, not in mode {mode}")
        for kind, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
            get = c.get(kind, {}).get("httpGet", {})
            if get.get("path") != path or ports.get(get.get("port"), get.get("port")) != probe_port:
                problems.append(f"{where}: mode {mode}: no {kind} httpGet {path} on the probe port {probe_port} ({get or 'none'})")
        token = sc_values.get("api", {}).get("token", {}).get("existingSecret")
        if token:
            flag = next((a for a in c["args"] if a.startswith("--token-file=")), "")
            if volumes.get("hakeeper-api-token", {}).get("secret", {}).get("secretName") != token or not flag.startswith("--token-file=" + mounts.get("hakeeper-api-token", "?") + "/"):
                problems.append(f"{where}: --token-file is not a file of the token Secret")
        for jc in spec["containers"]:
            probe = jc.get("readinessProbe", {})
            get = probe.get("httpGet", {})
            if get.get("path") != "/readyz?leader=dispatcher" or get.get("port") != probe_port or "exec" in probe:
                problems.append(f"{where}: mode {mode}: the JobManager's readiness is not an httpGet of /readyz?leader=dispatcher on the probe port {probe_port} ({probe or 'none'})")
        # The API token: the sidecar's alone (projected), or automounted for the pod.
        projected = sc_values.get("projectServiceAccountToken", True)
        if projected:
            if spec.get("automountServiceAccountToken") is not False or mounts.get("hakeeper-kube-api-access") != "/var/run/secrets/kubernetes.io/serviceaccount":
                problems.append(f"{where}: the token is not projected into the sidecar alone")
            if any("hakeeper-kube-api-access" in {v["name"] for v in jc.get("volumeMounts", [])} for jc in spec["containers"]):
                problems.append(f"{where}: the JobManager mounts the sidecar's API token")
        sas = [s for s in manifests if s.kind == "ServiceAccount" and s.name == spec["serviceAccountName"]]
        if not sas or sas[0].obj.get("automountServiceAccountToken") is not (not projected):
            problems.append(f"{where}: ServiceAccount {spec['serviceAccountName']} does not automount exactly when the token is not projected")
    return problems


def check_flink(manifests: list[Manifest], values: dict[str, Any]) -> list[str]:
    if not values.get("flink", {}).get("enabled"):
        return [f"{m.kind}/{m.name} rendered although flink.enabled is false" for m in manifests if m.name.startswith("hakeeper-flink")]
    problems = []
    conf_maps = [m for m in manifests if m.kind == "ConfigMap" and m.name.endswith("-flink-config")]
    if len(conf_maps) != 1:
        return ["no flink-conf ConfigMap"]
    conf = dict(
        line.split(": ", 1) for line in conf_maps[0].obj["data"]["flink-conf.yaml"].splitlines() if line.strip() and not line.startswith("#")
    )
    want = {
        "high-availability": "org.apache.flink.kubernetes.highavailability.KubernetesHaServicesFactory",
        "kubernetes.cluster-id": "hakeeper-flink",
        "kubernetes.namespace": NAMESPACE,
        "high-availability.storageDir": values["flink"].get("haStorageDir", "s3://flink-ha/recovery"),
    }
    for key, value in want.items():
        if conf.get(key) != value:
            problems.append(f"flink-conf.yaml: {key} is {conf.get(key)!r}, not {value!r}")
    jm = [m for m in manifests if m.kind == "Deployment" and m.name.endswith("-flink-jobmanager")]
    if len(jm) != 1 or jm[0].obj["spec"]["replicas"] != 2:
        problems.append("no JobManager Deployment with 2 replicas")
    else:
        c = jm[0].obj["spec"]["template"]["spec"]["containers"][0]
        if c["image"] != "flink:1.14.6-scala_2.12-java11":
            problems.append(f"the JobManager image is {c['image']}")
        if jm[0].obj["spec"]["template"]["spec"].get("automountServiceAccountToken") is not True:
            problems.append("the JobManagers do not mount their token (Flink's HA uses the API)")
    roles = [m for m in manifests if m.kind == "Role" and m.name.endswith("-flink-ha")]
    if len(roles) != 1 or rules_of(roles[0]) != FLINK_HA:
        problems.append(f"the Flink Role does not grant exactly {show(FLINK_HA)}")
    if not any(m.kind == "Service" and m.name.endswith("-flink-jobmanager") for m in manifests):
        problems.append("no JobManager Service")
    return problems


# ---------------------------------------------------------------------------------------------
# The binary


def binary() -> Path | None:
    path = Path(os.environ.get("HAKEEPER_BIN", ROOT / "target" / "debug" / "hakeeper"))
    return path if path.is_file() and os.access(path, os.X_OK) else None


def check_command_lines(manifests: list[Manifest], exe: Path) -> list[str]:
    """Each hakeeper container's arguments and plain environment, run by the real binary with
    a kubeconfig that does not exist: every flag must parse and every check before connecting
    pass, so the run must end at the kubeconfig (exit 1), not at clap (exit 2) or a setting."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="hakeeper-flags-") as tmp:
        token = Path(tmp) / "token"
        token.write_text("s3cr3t\n")
        for m, _, c in hakeeper_containers(manifests):
            # Files mounted from Secrets do not exist here: a token file stands in for them.
            args = [re.sub(r"^(--(?:alert-webhook-)?token-file)=.*", rf"\1={token}", a) for a in c["args"]]
            env = {"PATH": os.environ.get("PATH", ""), "HAKEEPER_KUBECONFIG": str(Path(tmp) / "no-kubeconfig")}
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = e["value"]
                elif "secretKeyRef" in e.get("valueFrom", {}):
                    env[e["name"]] = "from-a-secret"
            run = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=60)
            if run.returncode != 1 or "kubernetes configuration" not in run.stderr:
                detail = (run.stderr.strip() or run.stdout.strip()).splitlines()
                problems.append(f"{m.kind}/{m.name} container {c['name']}: exit {run.returncode}: {' | '.join(detail[:6])}")
    return problems


# ---------------------------------------------------------------------------------------------


def render_set(chart: str, values: dict[str, Any], consumer_dir: Path) -> list[Manifest]:
    return render(CHART_DIR if chart == "hakeeper" else consumer_dir, values)


def lint_problems(chart_dir: Path, values: dict[str, Any], kube: str) -> list[str]:
    report = helm.lint(chart_dir, values, strict=True, namespace=NAMESPACE, kube_version=f"v{kube}.0")
    # Severity 1 is informational ("icon is recommended"); 2 is a warning, 3 an error.
    found = [f"lint at {kube}: {msg['path']}: {msg['error'].strip()}" for msg in report["messages"] if msg["severity"] >= 2]
    found += [f"lint at {kube}: {e.strip()}" for e in report["errors"] if not any(e.strip() in f for f in found)]
    return found


def main() -> int:
    results = Results()
    with helm.Chart.load(CHART_DIR) as chart:
        meta = chart.metadata
    oldest, newest = kubernetes_versions(meta)
    versions = (oldest, newest)
    supported = kv_utils.all_versions()
    print(f"Helm {helm.helm_sdk_version()} (helm-python-sdk {helm.__version__}), kubernetes-validate {kubernetes_validate.__version__}")
    print(f"Kubernetes versions checked: {oldest} (the oldest the chart claims, {meta['kubeVersion']}) and {newest} (the newest kubernetes-validate knows)")

    problems = []
    if meta.get("appVersion") != cargo_version():
        problems.append(f"appVersion {meta.get('appVersion')} is not Cargo.toml's version {cargo_version()}")
    if not any(Version(v) >= Version(oldest) and v.startswith(oldest + ".") for v in supported):
        problems.append(f"kubernetes-validate has no schemas for {oldest}")
    if Version(oldest) > Version(newest):
        problems.append(f"the chart claims {meta['kubeVersion']}, newer than anything kubernetes-validate knows")
    results.check("chart metadata: appVersion is Cargo.toml's version, kubeVersion can be validated", problems)

    skipped_kinds: dict[str, str] = {}
    exe = binary()
    with consumer_chart() as consumer_dir:
        for name, chart_name, values in VALUE_SETS:
            chart_dir = CHART_DIR if chart_name == "hakeeper" else consumer_dir
            label = f"[{name}]"
            lint = [p for kube in versions for p in lint_problems(chart_dir, values, kube)]
            results.check(f"{label} helm lint --strict at {oldest} and {newest}", lint)
            try:
                manifests = render_set(chart_name, values, consumer_dir)
            except helm.HelmError as e:
                results.check(f"{label} helm template", [str(e)])
                continue
            kinds = sorted({m.kind for m in manifests})
            results.check(f"{label} helm template: {len(manifests)} objects ({', '.join(kinds)})", [] if manifests else ["nothing rendered"])
            results.check(f"{label} kubernetes-validate --strict at {oldest} and {newest}", validate_schemas(manifests, versions, skipped_kinds))
            hk_values = values.get("hakeeper", {}) if chart_name == "consumer" else values
            if chart_name == "consumer":
                # The consumer fixture turns the operator off; its defaults are the hakeeper ones.
                hk_values = {**hk_values, "operator": {**hk_values.get("operator", {}), "enabled": False}}
            results.check(f"{label} containers hardened, tokens explicit, resources set", check_hardening(manifests))
            results.check(f"{label} operator: Deployment, probes, PDB, Service, RBAC = OWN + WATCHED", check_operator(manifests, hk_values))
            results.check(f"{label} JobManager side: Role = SIDECAR, native sidecar, listen mode, probes, token", check_jobmanager_side(manifests, hk_values))
            results.check(f"{label} example Flink cluster", check_flink(manifests, hk_values))
            if exe:
                results.check(f"{label} hakeeper {exe.relative_to(ROOT) if exe.is_relative_to(ROOT) else exe.name} accepts every rendered command line", check_command_lines(manifests, exe))
            else:
                results.skip(f"{label} command lines against the binary", "no hakeeper binary: build it (cargo build) or set HAKEEPER_BIN")

        # NOTES.txt shows how to see the HA state and the alerts.
        text = notes(CHART_DIR, {"flink": {"enabled": True}})
        want = ["kubectl -n hakeeper describe cm hakeeper-flink-dispatcher-leader", "hakeeper inspect --cluster-id hakeeper-flink", "/metrics", "get events"]
        results.check("NOTES.txt: HA state (describe cm, hakeeper inspect) and alerts (Events, metrics)", [f"NOTES.txt lacks {w!r}" for w in want if w not in text])

        for name, chart_name, values, needles in BAD_VALUE_SETS:
            try:
                render_set(chart_name, values, consumer_dir)
                results.check(f"rejected: {name}", [f"rendered without an error: {json.dumps(values)}"])
            except helm.HelmError as e:
                message = str(e)
                missing = [n for n in needles if n not in message]
                results.check(f"rejected: {name} ({message.strip().splitlines()[-1].strip()[:160]})", [f"the error does not name {n!r}: {message}" for n in missing])

    for kind, why in sorted(skipped_kinds.items()):
        results.skip(f"kubernetes-validate of {kind}", f"{why}; kubernetes-validate has only the built-in kinds' schemas")

    # deploy/: rendered files up to date, the hand-written FlinkDeployment well-formed.
    stale = []
    for path, text in expected_deploy_files().items():
        if not path.exists():
            stale.append(f"{path.relative_to(ROOT)} is missing; run python3 tests/chart/render.py")
        elif path.read_text() != text:
            stale.append(f"{path.relative_to(ROOT)} differs from the chart; run python3 tests/chart/render.py")
    results.check("deploy/ is what tests/chart/render.py renders from the chart", stale)
    problems = []
    for path, _ in expected_deploy_files().items():
        if path.exists():
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
            problems += validate_schemas([Manifest(str(path.relative_to(ROOT)), "", d) for d in docs], versions, skipped_kinds)
    results.check(f"deploy/*.yaml: kubernetes-validate --strict at {oldest} and {newest}", problems)
    fd_path = ROOT / "deploy" / "examples" / "flinkdeployment.yaml"
    problems = []
    docs = [d for d in yaml.safe_load_all(fd_path.read_text()) if d] if fd_path.exists() else []
    fds = [d for d in docs if d.get("kind") == "FlinkDeployment"]
    if len(fds) != 1 or fds[0].get("apiVersion") != "flink.apache.org/v1beta1":
        problems.append("deploy/examples/flinkdeployment.yaml holds no FlinkDeployment of flink.apache.org/v1beta1")
    else:
        conf = fds[0]["spec"].get("flinkConfiguration", {})
        if conf.get("high-availability") != "org.apache.flink.kubernetes.highavailability.KubernetesHaServicesFactory" or not conf.get("high-availability.storageDir"):
            problems.append("the FlinkDeployment does not configure Kubernetes HA (high-availability, high-availability.storageDir)")
    results.check("deploy/examples/flinkdeployment.yaml: a FlinkDeployment with Kubernetes HA", problems)
    results.skip("kubernetes-validate of deploy/examples/flinkdeployment.yaml", CUSTOM_KINDS["FlinkDeployment"])

    if results.failed:
        print("\nfailed:")
        for name in results.failed:
            print(f"  {name}")
    print(f"chart: {results.passed} passed, {len(results.failed)} failed, {results.skipped} skipped")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
