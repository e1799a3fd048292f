"""Offline checks of the Helm chart helm/myelin.

No helm binary and no cluster: `helm-python-sdk` (the Helm v4 Go SDK behind ctypes) lints and renders
the chart, `kubernetes-validate` checks every rendered manifest against the strict Kubernetes
OpenAPI schemas of several releases, and the tests below assert what schemas cannot: replicas,
anti-affinity, Secret wiring, the properties mount, ports, probes, TLS, the PDB, the volume claims,
the security context and the values schema.

Run: python3 -m venv /tmp/hvenv && /tmp/hvenv/bin/pip install -r tests/deploy/requirements.txt \
     && /tmp/hvenv/bin/pytest tests/deploy/test_helm.py
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError
from kubernetes_validate.utils import ValidationError as KubeValidationError

CHART = Path(__file__).resolve().parents[2] / "helm" / "myelin"
RELEASE = "myelin"
NAMESPACE = "axon"
HEADLESS = "myelin-headless"
POD_DOMAIN = f"{HEADLESS}.{NAMESPACE}.svc.cluster.local"
PROPERTIES_PATH = "/axonserver/config/axonserver.properties"

# Kubernetes releases whose schemas every manifest must pass: the oldest the chart supports
# (kubeVersion >=1.25), EKS-era ones, and the newest kubernetes-validate ships.
KUBE_VERSIONS = ["1.25.0", "1.29.0", "1.33.0", "1.37.0"]

# Value sets that switch on every optional branch of the templates.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "preferred-anti-affinity-and-node-group": {
        "podAntiAffinity": {"type": "preferred"},
        "nodeGroup": {"values": ["axonserver"]},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "myelin"}},
            }
        ],
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "axon", "effect": "NoSchedule"}],
        "nodeSelector": {"kubernetes.io/arch": "arm64"},
        "priorityClassName": "high",
    },
    "existing-secrets": {
        "accessControl": {
            "adminToken": {"existingSecret": "axon-admin", "key": "token"},
            "appToken": {"existingSecret": "axon-app", "key": "token"},
            "internalToken": {"existingSecret": "axon-internal", "key": "token"},
        }
    },
    "access-control-off-no-log-volume": {
        "accessControl": {"enabled": False},
        "persistence": {"log": {"enabled": False}, "storageClass": "-"},
    },
    "service-monitor-and-extras": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "properties": {"axoniq.axonserver.max-message-size": "8MB"},
        "image": {"digest": "sha256:" + "a" * 64},
        "imagePullSecrets": ["ecr"],
        "service": {"type": "LoadBalancer", "annotations": {"a": "b"}},
        "extraEnv": [{"name": "RUST_LOG", "value": "debug"}],
        "statefulset": {"podAnnotations": {"x": "y"}, "podLabels": {"team": "axon"}},
        "serviceAccountName": "myelin",
    },
    "pdb-unhealthy-pod-eviction-policy": {
        "podDisruptionBudget": {"unhealthyPodEvictionPolicy": "AlwaysAllow"},
    },
    "tls": {
        "tls": {"enabled": True, "existingSecret": "myelin-tls"},
        "serviceMonitor": {"enabled": True},
    },
}

# unhealthyPodEvictionPolicy exists from Kubernetes 1.26 on.
MIN_KUBE_FOR_VALUE_SET = {"pdb-unhealthy-pod-eviction-policy": "1.26.0"}


# --- rendering helpers ---------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (the API server's strict decoding does too)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        keys.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render_files(chart, values=None, name=RELEASE, namespace=NAMESPACE) -> dict[str, str]:
    return chart.render(values or {}, name=name, namespace=namespace, is_install=True)


def render(chart, values=None, name=RELEASE, namespace=NAMESPACE) -> list[dict]:
    """Every manifest (tests included, NOTES excluded), parsed strictly."""
    docs = []
    for path, text in sorted(render_files(chart, values, name, namespace).items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        for doc in yaml.load_all(text, Loader=_StrictLoader):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                docs.append({"source": path, "doc": doc})
    return docs


def only(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d["doc"] for d in docs if d["doc"]["kind"] == kind and (name is None or d["doc"]["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[dict], kind: str) -> list[dict]:
    return [d["doc"] for d in docs if d["doc"]["kind"] == kind]


def statefulset(docs) -> dict:
    return only(docs, "StatefulSet")


def container(docs) -> dict:
    containers = statefulset(docs)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["myelin"]
    return containers[0]


def env_of(c: dict) -> dict[str, dict]:
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names)), f"duplicate env vars: {names}"
    return {e["name"]: e for e in c["env"]}


def helm_test_pod(docs) -> dict:
    pods = [d for d in kinds(docs, "Pod") if d["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    assert len(pods) == 1
    return pods[0]


# --- helm lint -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", ["v" + v for v in KUBE_VERSIONS])
@pytest.mark.parametrize("value_set", ["defaults", "service-monitor-and-extras", "pdb-unhealthy-pod-eviction-policy", "tls"])
def test_helm_lint_strict_is_clean(value_set, kube_version):
    if kube_version[1:] < MIN_KUBE_FOR_VALUE_SET.get(value_set, "0"):
        pytest.skip(f"{value_set} needs Kubernetes {MIN_KUBE_FOR_VALUE_SET[value_set]}")
    report = helm.lint(
        CHART, VALUE_SETS[value_set], strict=True, namespace=NAMESPACE, kube_version=kube_version
    )
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], problems


def test_chart_metadata(chart):
    meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "myelin"
    assert meta.get("dependencies") in (None, []), "the chart must render offline: no dependencies"
    assert chart.schema is not None, "values.schema.json must ship with the chart"


def test_chart_packages(tmp_path):
    archive = Path(helm.package(CHART, destination=tmp_path))
    assert archive.name == "myelin-0.1.0.tgz" and archive.stat().st_size > 0
    with helm.Chart.load(archive) as packaged:
        assert packaged.schema is not None
        assert any(t["name"] == "templates/tests/test-cluster.yaml" for t in packaged.templates)


# --- Kubernetes schemas --------------------------------------------------------------------------


SERVICE_MONITOR_SPEC_KEYS = {"namespaceSelector", "selector", "endpoints", "jobLabel"}
SERVICE_MONITOR_ENDPOINT_KEYS = {"port", "path", "interval", "scrapeTimeout", "scheme", "tlsConfig"}
SERVICE_MONITOR_TLS_KEYS = {"ca", "serverName", "insecureSkipVerify"}


def check_service_monitor(doc: dict) -> None:
    """Structural check of the one CRD kind the chart may render (no bundled schema for it)."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    spec = doc["spec"]
    assert set(spec) <= SERVICE_MONITOR_SPEC_KEYS, set(spec) - SERVICE_MONITOR_SPEC_KEYS
    assert isinstance(spec["selector"]["matchLabels"], dict) and spec["selector"]["matchLabels"]
    assert all(isinstance(v, str) for v in spec["selector"]["matchLabels"].values())
    assert spec["namespaceSelector"]["matchNames"] == [doc["metadata"]["namespace"]]
    assert spec["endpoints"], "at least one endpoint"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= SERVICE_MONITOR_ENDPOINT_KEYS, endpoint
        assert isinstance(endpoint["port"], str)
        assert endpoint["path"].startswith("/")
        assert endpoint.get("scheme", "http") in ("http", "https")
        if "tlsConfig" in endpoint:
            tls = endpoint["tlsConfig"]
            assert set(tls) <= SERVICE_MONITOR_TLS_KEYS, tls
            assert set(tls["ca"]) == {"secret"} and set(tls["ca"]["secret"]) == {"name", "key"}
            assert isinstance(tls["serverName"], str)


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_manifest_passes_the_kubernetes_schemas(chart, value_set, kube_version):
    if kube_version < MIN_KUBE_FOR_VALUE_SET.get(value_set, "0"):
        pytest.skip(f"{value_set} needs Kubernetes {MIN_KUBE_FOR_VALUE_SET[value_set]}")
    docs = render(chart, VALUE_SETS[value_set])
    errors = []
    for item in docs:
        doc = item["doc"]
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except SchemaNotFoundError:
            if doc["kind"] == "ServiceMonitor":
                check_service_monitor(doc)
            else:
                errors.append(f"{item['source']}: no schema for {doc['apiVersion']} {doc['kind']}")
        except KubeValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{item['source']}: {doc['kind']}: {path}: {e.message}")
    assert errors == []


def test_unknown_kinds_are_errors_not_warnings():
    """The strict check above relies on this: a kind without a schema raises."""
    with pytest.raises(SchemaNotFoundError):
        kubernetes_validate.validate(
            {"apiVersion": "example.com/v1", "kind": "Nope", "metadata": {"name": "x"}}, "1.33.0", strict=True
        )


def test_expected_manifests_by_default(chart):
    docs = render(chart)
    found = sorted((d["doc"]["kind"], d["doc"]["metadata"]["name"]) for d in docs)
    assert found == [
        ("ConfigMap", "myelin"),
        ("Pod", "myelin-test-cluster"),
        ("PodDisruptionBudget", "myelin"),
        ("Secret", "myelin-tokens"),
        ("Service", "myelin"),
        ("Service", "myelin-headless"),
        ("StatefulSet", "myelin"),
    ]
    for item in docs:
        assert item["doc"]["metadata"].get("namespace") == NAMESPACE, item["source"]


# --- StatefulSet ---------------------------------------------------------------------------------


def test_statefulset_three_parallel_replicas_governed_by_the_headless_service(chart):
    docs = render(chart)
    sts = statefulset(docs)
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["serviceName"] == HEADLESS
    headless = only(docs, "Service", HEADLESS)
    assert headless["spec"]["clusterIP"] == "None"
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["spec"]["minReadySeconds"] >= 1


def test_selector_matches_pod_labels_and_services_select_the_pods(chart):
    docs = render(chart)
    sts = statefulset(docs)
    selector = sts["spec"]["selector"]["matchLabels"]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert not any(k == "helm.sh/chart" or k == "app.kubernetes.io/version" for k in selector)
    for svc in kinds(docs, "Service"):
        assert svc["spec"]["selector"] == selector, svc["metadata"]["name"]
    # The helm test pod must not be picked up by the Services or the PDB.
    assert not selector.items() <= helm_test_pod(docs)["metadata"]["labels"].items()


def test_node_identity_comes_from_the_pod_name(chart):
    env = env_of(container(render(chart)))
    names = list(env)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["AXONIQ_AXONSERVER_NAME"]["value"] == "$(POD_NAME)"
    assert env["AXONIQ_AXONSERVER_HOSTNAME"]["value"] == f"$(POD_NAME).{POD_DOMAIN}"
    assert env["AXONIQ_AXONSERVER_INTERNAL_HOSTNAME"]["value"] == f"$(POD_NAME).{POD_DOMAIN}"
    # $(POD_NAME) only expands when POD_NAME is defined earlier in the list.
    assert names.index("POD_NAME") < names.index("AXONIQ_AXONSERVER_NAME")
    assert env["AXONIQ_AXONSERVER_EVENT_STORAGE"]["value"] == "/axonserver/data"
    assert env["AXONIQ_AXONSERVER_SNAPSHOT_STORAGE"]["value"] == "/axonserver/data"


def test_pod_zero_recognises_itself_as_the_first_node(chart):
    """Myelin creates the cluster on the node whose internal host:port equals autocluster.first
    exactly (crates/myelin-server/src/cluster/mod.rs, creates_cluster); every other pod joins."""
    docs = render(chart)
    env = env_of(container(docs))
    props = parse_properties(only(docs, "ConfigMap")["data"]["axonserver.properties"])
    internal = {
        i: env["AXONIQ_AXONSERVER_INTERNAL_HOSTNAME"]["value"].replace("$(POD_NAME)", f"myelin-{i}")
        + ":" + props["axoniq.axonserver.internal-port"]
        for i in range(3)
    }
    assert internal[0] == props["axoniq.axonserver.autocluster.first"]
    assert props["axoniq.axonserver.autocluster.first"] not in (internal[1], internal[2])


def test_names_follow_release_namespace_and_cluster_domain(chart):
    docs = render(chart, {"clusterDomain": "corp.local"}, name="events", namespace="prod")
    sts = statefulset(docs)
    assert sts["metadata"]["name"] == "events-myelin"
    assert sts["spec"]["serviceName"] == "events-myelin-headless"
    env = env_of(container(docs))
    assert env["AXONIQ_AXONSERVER_HOSTNAME"]["value"] == "$(POD_NAME).events-myelin-headless.prod.svc.corp.local"
    props = only(docs, "ConfigMap")["data"]["axonserver.properties"]
    assert "axoniq.axonserver.autocluster.first=events-myelin-0.events-myelin-headless.prod.svc.corp.local:8224\n" in props


def test_container_runs_serve_with_the_mounted_properties(chart):
    c = container(render(chart))
    assert c["command"] == ["/usr/local/bin/myelin"]
    assert c["args"] == ["serve", "--config", PROPERTIES_PATH]
    assert c["image"] == "myelin:0.1.0"
    digest = "sha256:" + "b" * 64
    assert container(render(chart, {"image": {"digest": digest}}))["image"] == f"myelin@{digest}"


# --- affinity ------------------------------------------------------------------------------------


def pod_spec(docs) -> dict:
    return statefulset(docs)["spec"]["template"]["spec"]


def test_zone_anti_affinity_is_required_by_default(chart):
    docs = render(chart)
    affinity = pod_spec(docs)["affinity"]
    assert set(affinity) == {"podAntiAffinity"}
    terms = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert len(terms) == 1
    assert terms[0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert terms[0]["labelSelector"]["matchLabels"] == statefulset(docs)["spec"]["selector"]["matchLabels"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in affinity["podAntiAffinity"]


def test_zone_anti_affinity_can_be_preferred(chart):
    docs = render(chart, {"podAntiAffinity": {"type": "preferred", "weight": 50}})
    anti = pod_spec(docs)["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    [term] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["weight"] == 50
    assert term["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == statefulset(docs)["spec"]["selector"]["matchLabels"]


def test_anti_affinity_can_be_switched_off(chart):
    assert "affinity" not in pod_spec(render(chart, {"podAntiAffinity": {"type": "none"}}))


def test_node_group_affinity_is_optional(chart):
    assert "nodeAffinity" not in pod_spec(render(chart))["affinity"]
    spec = pod_spec(render(chart, {"nodeGroup": {"values": ["axonserver"]}}))
    [term] = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": "eks.amazonaws.com/nodegroup", "operator": "In", "values": ["axonserver"]}
    ]
    assert "podAntiAffinity" in spec["affinity"]
    preferred = pod_spec(render(chart, {"nodeGroup": {"values": ["a"], "type": "preferred"}}))
    assert preferred["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100


def test_explicit_affinity_replaces_the_generated_rules(chart):
    custom = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "k", "operator": "Exists"}]}]}}}
    assert pod_spec(render(chart, {"affinity": custom}))["affinity"] == custom


# --- Secrets and tokens --------------------------------------------------------------------------


def test_tokens_come_from_the_generated_secret(chart):
    docs = render(chart)
    env = env_of(container(docs))
    secret = only(docs, "Secret", "myelin-tokens")
    expected = {
        "AXONIQ_AXONSERVER_ACCESSCONTROL_ADMIN_TOKEN": "admin-token",
        "AXONIQ_AXONSERVER_ACCESSCONTROL_TOKEN": "token",
        "AXONIQ_AXONSERVER_ACCESSCONTROL_INTERNAL_TOKEN": "internal-token",
    }
    for var, key in expected.items():
        assert env[var] == {"name": var, "valueFrom": {"secretKeyRef": {"name": "myelin-tokens", "key": key}}}
        assert key in secret["data"] and len(secret["data"][key]) >= 40
    assert set(secret["data"]) == set(expected.values())
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # Two renders without a cluster generate different tokens: stability on upgrade comes from lookup.
    again = only(render(chart), "Secret", "myelin-tokens")
    assert again["data"]["admin-token"] != secret["data"]["admin-token"]


def test_generated_secret_reuses_the_live_values_through_lookup():
    """Offline, `lookup` returns nothing; check that the template reads the live Secret back and
    only generates keys it does not find (the behaviour `helm upgrade` relies on)."""
    source = (CHART / "templates" / "secret.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in source
    assert "hasKey $existingData $key" in source
    assert "index $existingData $key" in source
    assert source.index("index $existingData $key") < source.index("randAlphaNum")


def test_existing_secrets_are_referenced_and_nothing_is_generated(chart):
    docs = render(chart, VALUE_SETS["existing-secrets"])
    env = env_of(container(docs))
    assert env["AXONIQ_AXONSERVER_ACCESSCONTROL_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "axon-admin", "key": "token"}
    assert env["AXONIQ_AXONSERVER_ACCESSCONTROL_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "axon-app", "key": "token"}
    assert env["AXONIQ_AXONSERVER_ACCESSCONTROL_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "axon-internal", "key": "token"}
    assert kinds(docs, "Secret") == []


def test_only_the_missing_token_is_generated(chart):
    docs = render(chart, {"accessControl": {"adminToken": {"existingSecret": "axon-admin"}}})
    env = env_of(container(docs))
    assert env["AXONIQ_AXONSERVER_ACCESSCONTROL_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "axon-admin", "key": "admin-token"}
    assert set(only(docs, "Secret")["data"]) == {"token", "internal-token"}


def test_access_control_off_keeps_only_the_internal_token(chart):
    docs = render(chart, {"accessControl": {"enabled": False}})
    env = env_of(container(docs))
    assert "AXONIQ_AXONSERVER_ACCESSCONTROL_ADMIN_TOKEN" not in env
    assert "AXONIQ_AXONSERVER_ACCESSCONTROL_TOKEN" not in env
    assert env["AXONIQ_AXONSERVER_ACCESSCONTROL_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "myelin-tokens"
    assert set(only(docs, "Secret")["data"]) == {"internal-token"}
    assert "axoniq.axonserver.accesscontrol.enabled=false" in only(docs, "ConfigMap")["data"]["axonserver.properties"]


def test_no_token_reaches_the_configmap_or_plain_env(chart):
    docs = render(chart)
    props = parse_properties(only(docs, "ConfigMap")["data"]["axonserver.properties"])
    assert not [key for key in props if "token" in key.lower()]
    for var in env_of(container(docs)).values():
        if "TOKEN" in var["name"]:
            assert "value" not in var and "secretKeyRef" in var["valueFrom"]


# --- ConfigMap and properties --------------------------------------------------------------------


def parse_properties(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert key not in out, f"{key} twice"
            out[key] = value
    return out


def test_properties_come_from_the_configmap_mounted_read_only_with_subpath(chart):
    docs = render(chart)
    cm = only(docs, "ConfigMap", "myelin")
    spec = pod_spec(docs)
    [mount] = [m for m in container(docs)["volumeMounts"] if m["mountPath"] == PROPERTIES_PATH]
    assert mount["subPath"] == "axonserver.properties"
    assert mount["readOnly"] is True
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    assert "axonserver.properties" in cm["data"]
    props = parse_properties(cm["data"]["axonserver.properties"])
    assert props == {
        "axoniq.axonserver.port": "8124",
        "axoniq.axonserver.internal-port": "8224",
        "server.port": "8024",
        "axoniq.axonserver.autocluster.first": f"myelin-0.{POD_DOMAIN}:8224",
        "axoniq.axonserver.autocluster.contexts": "_admin,default",
        "axoniq.axonserver.accesscontrol.enabled": "true",
    }


def test_extra_properties_and_first_node_override(chart):
    values = {
        "properties": {"axoniq.axonserver.max-message-size": "8MB", "axoniq.axonserver.replication.log-keep-entries": 1000000},
        "cluster": {"first": f"myelin-1.{POD_DOMAIN}:8224", "contexts": ["default"]},
    }
    props = parse_properties(only(render(chart, values), "ConfigMap")["data"]["axonserver.properties"])
    assert props["axoniq.axonserver.max-message-size"] == "8MB"
    assert props["axoniq.axonserver.replication.log-keep-entries"] == "1000000"
    assert props["axoniq.axonserver.autocluster.first"] == f"myelin-1.{POD_DOMAIN}:8224"
    assert props["axoniq.axonserver.autocluster.contexts"] == "default"


def test_first_node_does_not_depend_on_replicas(chart):
    """Scaling must not change the pod template (it would restart every pod)."""
    three = statefulset(render(chart))["spec"]["template"]
    five = statefulset(render(chart, {"replicas": 5}))["spec"]["template"]
    assert three == five


def test_config_change_rolls_the_pods(chart):
    def checksum(values):
        return statefulset(render(chart, values))["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"properties": {"axoniq.axonserver.max-message-size": "8MB"}})


# --- ports and Services --------------------------------------------------------------------------


def test_container_ports(chart):
    ports = {p["name"]: p["containerPort"] for p in container(render(chart))["ports"]}
    assert ports == {"http": 8024, "grpc": 8124, "internal": 8224}


def test_headless_service_publishes_not_ready_pods_on_8124_and_8224(chart):
    headless = only(render(chart), "Service", HEADLESS)
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["clusterIP"] == "None"
    ports = {p["port"]: p["targetPort"] for p in headless["spec"]["ports"]}
    assert ports[8124] == "grpc" and ports[8224] == "internal"


def test_client_service_serves_8124_and_8024_from_ready_pods(chart):
    svc = only(render(chart), "Service", "myelin")
    assert svc["spec"]["type"] == "ClusterIP"
    assert not svc["spec"].get("publishNotReadyAddresses", False)
    ports = {p["port"]: p["targetPort"] for p in svc["spec"]["ports"]}
    assert ports == {8124: "grpc", 8024: "http"}


def test_service_target_ports_exist_on_the_container(chart):
    docs = render(chart)
    names = {p["name"] for p in container(docs)["ports"]}
    for svc in kinds(docs, "Service"):
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in names


def test_ports_are_configurable_everywhere(chart):
    docs = render(chart, {"ports": {"http": 9024, "grpc": 9124, "internal": 9224}})
    assert {p["containerPort"] for p in container(docs)["ports"]} == {9024, 9124, 9224}
    props = parse_properties(only(docs, "ConfigMap")["data"]["axonserver.properties"])
    assert props["server.port"] == "9024" and props["axoniq.axonserver.port"] == "9124"
    assert props["axoniq.axonserver.internal-port"] == "9224"
    assert props["axoniq.axonserver.autocluster.first"].endswith(":9224")


# --- probes --------------------------------------------------------------------------------------


def probe_target(c: dict, probe: str) -> tuple[str, int]:
    get = c[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
    return get["path"], port


def test_probes(chart):
    c = container(render(chart))
    assert probe_target(c, "readinessProbe") == ("/actuator/health/readiness", 8024)
    # Liveness must not use cluster health: losing the leader would restart every pod.
    assert probe_target(c, "livenessProbe") == ("/actuator/health/liveness", 8024)
    assert probe_target(c, "startupProbe") == ("/actuator/info", 8024)
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert c["livenessProbe"]["failureThreshold"] * c["livenessProbe"]["periodSeconds"] >= 30


def test_probe_timings_are_values_but_endpoints_are_not(chart):
    c = container(render(chart, {"readinessProbe": {"periodSeconds": 2}}))
    assert c["readinessProbe"]["periodSeconds"] == 2
    assert probe_target(c, "readinessProbe") == ("/actuator/health/readiness", 8024)
    with pytest.raises(helm.HelmValuesError):
        render(chart, {"livenessProbe": {"httpGet": {"path": "/actuator/health", "port": 8024}}})


# --- TLS ------------------------------------------------------------------------------------------


TLS_DIR = "/axonserver/tls"
TLS_SECRET = "myelin-tls"
SSL_PROPERTIES = {
    "axoniq.axonserver.ssl.enabled": "true",
    "axoniq.axonserver.ssl.cert-chain-file": f"{TLS_DIR}/tls.crt",
    "axoniq.axonserver.ssl.private-key-file": f"{TLS_DIR}/tls.key",
    "axoniq.axonserver.ssl.internal-trust-manager-file": f"{TLS_DIR}/ca.crt",
    "server.ssl.enabled": "true",
}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")

# (values, TLS on?): TLS is off by default, and a Secret name alone does not switch it on.
TLS_CASES = {
    "tls-off": ({}, False),
    "tls-off-secret-named": ({"tls": {"existingSecret": TLS_SECRET}}, False),
    "tls-on": (VALUE_SETS["tls"], True),
    "tls-on-other-release": (merge(VALUE_SETS["tls"], {"clusterDomain": "corp.local"}), True),
}


def tls_volumes(docs) -> list[dict]:
    return [v for v in pod_spec(docs)["volumes"] if "secret" in v or v["name"] == "tls"]


def tls_mounts(docs) -> list[dict]:
    return [m for m in container(docs)["volumeMounts"] if m["name"] == "tls" or m["mountPath"].startswith(TLS_DIR)]


@pytest.mark.parametrize("case", sorted(TLS_CASES))
def test_tls_secret_is_mounted_as_a_directory_only_when_on(chart, case):
    values, on = TLS_CASES[case]
    docs = render(chart, values)
    if not on:
        assert tls_volumes(docs) == [] and tls_mounts(docs) == []
        return
    [volume] = tls_volumes(docs)
    assert volume["secret"]["secretName"] == TLS_SECRET
    # The whole Secret (no items): every key appears, and tls.crt, tls.key and ca.crt are read.
    assert "items" not in volume["secret"]
    assert volume["secret"]["defaultMode"] == 0o440
    [mount] = tls_mounts(docs)
    assert mount["name"] == volume["name"]
    assert mount["mountPath"] == TLS_DIR
    assert mount["readOnly"] is True
    # subPath mounts are never refreshed: a renewed certificate would not reach the server's reload.
    assert "subPath" not in mount and "subPathExpr" not in mount
    # The chart creates no certificate Secret of its own.
    assert [s["metadata"]["name"] for s in kinds(docs, "Secret")] == ["myelin-tokens"]


@pytest.mark.parametrize("case", sorted(TLS_CASES))
def test_tls_properties_point_at_the_mounted_files(chart, case):
    values, on = TLS_CASES[case]
    docs = render(chart, values)
    props = parse_properties(only(docs, "ConfigMap")["data"]["axonserver.properties"])
    ssl = {k: v for k, v in props.items() if ".ssl." in k}
    if not on:
        assert ssl == {}
        return
    assert ssl == SSL_PROPERTIES
    [mount] = tls_mounts(docs)
    for key, value in ssl.items():
        if key.endswith("-file"):
            assert value.rsplit("/", 1)[0] == mount["mountPath"], key
            assert value.rsplit("/", 1)[1] in {"tls.crt", "tls.key", "ca.crt"}, key
    # The rest of the file is what the same values without tls give.
    without_tls = {k: v for k, v in values.items() if k != "tls"}
    assert {k: v for k, v in props.items() if ".ssl." not in k} == parse_properties(
        only(render(chart, without_tls), "ConfigMap")["data"]["axonserver.properties"]
    )
    # No TLS setting reaches the environment, where it would override the file.
    assert not [name for name in env_of(container(docs)) if "SSL" in name]


@pytest.mark.parametrize("case", sorted(TLS_CASES))
def test_probe_scheme_follows_tls(chart, case):
    values, on = TLS_CASES[case]
    c = container(render(chart, values))
    for probe in PROBES:
        assert c[probe]["httpGet"].get("scheme", "HTTP") == ("HTTPS" if on else "HTTP"), probe
    # Paths and port stay the same either way.
    assert probe_target(c, "readinessProbe") == ("/actuator/health/readiness", 8024)
    assert probe_target(c, "livenessProbe") == ("/actuator/health/liveness", 8024)
    assert probe_target(c, "startupProbe") == ("/actuator/info", 8024)


@pytest.mark.parametrize("case", sorted(TLS_CASES))
def test_everything_that_talks_to_8024_follows_tls(chart, case):
    values, on = TLS_CASES[case]
    scheme = "https" if on else "http"
    domain = values.get("clusterDomain", "cluster.local")
    docs = render(chart, values)
    # helm test: the client Service and every pod.
    [c] = helm_test_pod(docs)["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SERVICE"] == f"{scheme}://myelin.{NAMESPACE}.svc.{domain}:8024"
    assert env["SCHEME"] == scheme
    script = c["command"][-1]
    assert '"$SCHEME://$pod/actuator/health"' in script and "http://" not in script
    # Client Service: what a load balancer or mesh in front of it is told.
    ports = {p["name"]: p["appProtocol"] for p in only(docs, "Service", "myelin")["spec"]["ports"]}
    assert ports == ({"grpc": "https", "http": "https"} if on else {"grpc": "grpc", "http": "http"})
    # ServiceMonitor (on in the TLS value set).
    monitors = kinds(docs, "ServiceMonitor")
    for sm in monitors:
        check_service_monitor(sm)
        [endpoint] = sm["spec"]["endpoints"]
        assert endpoint["scheme"] == "https"
        assert endpoint["tlsConfig"] == {
            "ca": {"secret": {"name": TLS_SECRET, "key": "ca.crt"}},
            "serverName": f"myelin.{NAMESPACE}.svc.{domain}",
        }
    assert bool(monitors) == on
    # NOTES
    notes = render_files(chart, values)["myelin/templates/NOTES.txt"]
    if on:
        assert "axon.axonserver.ssl-enabled=true" in notes
        assert f"get secret {TLS_SECRET} -o jsonpath='{{.data.ca\\.crt}}'" in notes
        assert f"https://myelin.{NAMESPACE}.svc.{domain}:8024/actuator/health" in notes
        assert "curl -s localhost:8024" not in notes
        assert "Probes (HTTPS)" in notes
    else:
        assert "ssl" not in notes.lower() and "https" not in notes
        assert "curl -s localhost:8024/actuator/health" in notes


def test_tls_on_switches_no_other_manifest(chart):
    """TLS changes the pod template (and so rolls the pods), the properties, the Services' protocols
    and the test pod, and adds nothing else."""
    off = render(chart, {"serviceMonitor": {"enabled": True}})
    on = render(chart, VALUE_SETS["tls"])
    names = lambda docs: sorted((d["doc"]["kind"], d["doc"]["metadata"]["name"]) for d in docs)
    assert names(on) == names(off)
    checksum = lambda docs: statefulset(docs)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert checksum(on) != checksum(off)
    # A renewed certificate changes only the Secret, which the template does not hash: no restart.
    assert checksum(render(chart, VALUE_SETS["tls"])) == checksum(on)


@pytest.mark.parametrize(
    "values",
    [{"tls": {"enabled": True}}, {"tls": {"enabled": True, "existingSecret": ""}}, {"tls": {"enabled": True}, "serviceMonitor": {"enabled": True}}],
    ids=["no-secret", "empty-secret", "no-secret-with-service-monitor"],
)
def test_tls_without_a_secret_fails_with_a_clear_message(chart, values):
    chart.validate_schema(values)  # valid values: the template, not the schema, explains the problem
    with pytest.raises(helm.HelmRenderError, match=r"tls\.enabled is true but tls\.existingSecret is empty") as raised:
        render(chart, values)
    assert "does not create certificates" in str(raised.value)
    # (helm lint does not catch this: Helm's lint mode only logs `fail` and `required`. The check is
    # in the template rather than in values.schema.json so that install and template print this
    # message instead of a generic schema error.)


# --- disruption budget ---------------------------------------------------------------------------


def test_pod_disruption_budget(chart):
    docs = render(chart)
    pdb = only(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == statefulset(docs)["spec"]["selector"]["matchLabels"]
    assert kinds(render(chart, {"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget") == []


# --- volumes -------------------------------------------------------------------------------------


def claims(docs) -> dict[str, dict]:
    return {t["metadata"]["name"]: t for t in statefulset(docs)["spec"]["volumeClaimTemplates"]}


def test_volume_claim_templates(chart):
    docs = render(chart)
    vcts = claims(docs)
    assert set(vcts) == {"data", "log"}
    assert vcts["data"]["spec"]["resources"]["requests"]["storage"] == "500Gi"
    assert vcts["log"]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    for vct in vcts.values():
        assert vct["spec"]["storageClassName"] == "aws-csi"
        assert vct["spec"]["accessModes"] == ["ReadWriteOnce"]
        # volumeClaimTemplates are immutable: no label that changes with the chart version.
        assert set(vct["metadata"]["labels"]) == set(statefulset(docs)["spec"]["selector"]["matchLabels"])
    mounts = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert mounts["data"] == "/axonserver/data"
    assert mounts["log"] == "/axonserver/log"
    assert statefulset(docs)["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }


def test_volume_sizes_and_classes_are_values(chart):
    vcts = claims(render(chart, {"persistence": {"storageClass": "gp3", "data": {"size": "1Ti"}, "log": {"storageClass": "io2"}}}))
    assert vcts["data"]["spec"]["storageClassName"] == "gp3"
    assert vcts["data"]["spec"]["resources"]["requests"]["storage"] == "1Ti"
    assert vcts["log"]["spec"]["storageClassName"] == "io2"
    assert claims(render(chart, {"persistence": {"storageClass": "-"}}))["data"]["spec"]["storageClassName"] == ""
    assert "storageClassName" not in claims(render(chart, {"persistence": {"storageClass": ""}}))["data"]["spec"]


def test_log_volume_can_be_left_out(chart):
    docs = render(chart, {"persistence": {"log": {"enabled": False}}})
    assert set(claims(docs)) == {"data"}
    assert "log" not in {m["name"] for m in container(docs)["volumeMounts"]}


# --- security ------------------------------------------------------------------------------------


RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
}


def check_restricted(pod_spec_: dict, c: dict) -> None:
    psc = pod_spec_["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    for key, value in RESTRICTED_CONTAINER.items():
        assert sc[key] == value, key
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec_["automountServiceAccountToken"] is False


def test_restricted_security_context(chart):
    docs = render(chart)
    spec = pod_spec(docs)
    check_restricted(spec, container(docs))
    assert spec["securityContext"]["fsGroup"] == 65532
    assert spec["securityContext"]["runAsGroup"] == 65532
    # A read-only root filesystem needs somewhere to write temporary files.
    assert "/tmp" in {m["mountPath"] for m in container(docs)["volumeMounts"]}
    test = helm_test_pod(docs)
    check_restricted(test["spec"], test["spec"]["containers"][0])


def test_resources_are_set(chart):
    resources = container(render(chart))["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


# --- ServiceMonitor ------------------------------------------------------------------------------


def test_service_monitor_is_off_by_default_and_scrapes_the_headless_service(chart):
    assert kinds(render(chart), "ServiceMonitor") == []
    docs = render(chart, {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}})
    sm = only(docs, "ServiceMonitor")
    check_service_monitor(sm)
    assert sm["metadata"]["labels"]["release"] == "prom"
    selected = [s for s in kinds(docs, "Service")
                if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == [HEADLESS]
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}


# --- values schema -------------------------------------------------------------------------------


BAD_VALUES = [
    {"replicas": "three"},
    {"replicas": 0},
    {"replicas": 3.5},
    {"podAntiAffinity": {"type": "sometimes"}},
    {"persistence": {"data": {"size": "lots"}}},
    {"persistence": {"retentionPolicy": {"whenDeleted": "Keep"}}},
    {"ports": {"http": 70000}},
    {"ports": {"grpc": "8124"}},
    {"statefulset": {"podManagementPolicy": "Random"}},
    {"service": {"type": "Ingress"}},
    {"image": {"digest": "latest"}},
    {"accessControl": {"enabled": "yes"}},
    {"properties": {"axoniq.axonserver.accesscontrol.admin-token": "secret"}},
    {"properties": {"axoniq.axonserver.autocluster.first": "elsewhere:8224"}},
    {"properties": {"axoniq.axonserver.max-message-size": "8MB\nserver.port=1"}},
    {"readinessProbe": {"periodSeconds": 0}},
    {"livenessProbe": {"successThreshold": 2}},
    {"podDisruptionBudget": {"maxUnavailable": "one"}},
    {"tls": {"enabled": "yes"}},
    {"tls": {"existingSecret": "My_Secret"}},
    {"tls": {"enabled": True, "existingSecret": "myelin-tls", "subPath": True}},
    {"properties": {"axoniq.axonserver.ssl.enabled": True}},
    {"properties": {"axoniq.axonserver.ssl.cert-chain-file": "/elsewhere/tls.crt"}},
    {"properties": {"server.ssl.enabled": False}},
    {"unknownKey": True},
]


@pytest.mark.parametrize("values", BAD_VALUES, ids=lambda v: yaml.safe_dump(v, default_flow_style=True).strip())
def test_schema_rejects_bad_values(chart, values):
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmValuesError):
        render(chart, values)
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert report["errors"], "lint must fail too"


def test_schema_accepts_the_defaults_and_the_value_sets(chart):
    chart.validate_schema({})
    for values in VALUE_SETS.values():
        chart.validate_schema(values)


def test_even_replicas_are_refused(chart):
    with pytest.raises(helm.HelmRenderError, match="odd number"):
        render(chart, {"replicas": 4})
    assert statefulset(render(chart, {"replicas": 1}))["spec"]["replicas"] == 1
    assert statefulset(render(chart, {"replicas": 5}))["spec"]["replicas"] == 5


def test_every_default_value_is_covered_by_the_schema(chart):
    """additionalProperties is false at every level the chart owns, so a value added to values.yaml
    without a schema entry fails validate_schema({}) above; this checks the top level explicitly."""
    schema = chart.schema
    assert schema["additionalProperties"] is False
    assert set(chart.values) <= set(schema["properties"])


# --- helm test and NOTES -------------------------------------------------------------------------


def test_helm_test_pod_checks_the_cluster_through_the_client_service(chart):
    docs = render(chart)
    pod = helm_test_pod(docs)
    assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert pod["spec"]["restartPolicy"] == "Never"
    [c] = pod["spec"]["containers"]
    image = c["image"]
    assert ":" in image and not image.endswith(":latest"), "the test image must be pinned"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SERVICE"] == f"http://myelin.{NAMESPACE}.svc.cluster.local:8024"
    assert env["PODS"].split() == [f"myelin-{i}.{POD_DOMAIN}:8024" for i in range(3)]
    assert env["REPLICAS"] == "3"
    script = c["command"][-1]
    assert "/actuator/health" in script and "/v1/cluster" in script and '"leader":true' in script
    assert "exit 1" in script


def test_notes_tell_how_to_connect(chart):
    notes = render_files(chart)["myelin/templates/NOTES.txt"]
    servers = ",".join(f"myelin-{i}.{POD_DOMAIN}:8124" for i in range(3))
    assert f"axon.axonserver.servers={servers}" in notes
    assert f"kubectl -n {NAMESPACE} port-forward svc/myelin 8024:8024" in notes
    assert "kubectl -n axon get secret myelin-tokens -o jsonpath='{.data.token}'" in notes
    flat = " ".join(notes.split())
    assert "readiness is /actuator/health/readiness" in flat
    assert "liveness is /actuator/health/liveness" in flat
    assert "lookup" in notes
