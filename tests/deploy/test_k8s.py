"""deploy/k8s: every document validated against the Kubernetes OpenAPI schemas bundled
with kubernetes-validate (strict: unknown fields are errors), for the oldest
supported Kubernetes (1.29) and the newest the validator ships; then what a schema
cannot see: probes on real ports, grace periods longer than the consumer's drain, the
autoscaler's target, the renewal schedule, the restricted pod security profile,
resources, and config/secret keys that are real settings of the service."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from delightbridge.consumer.config import ConsumerConfig
from delightbridge.core.settings import Settings, variable_names
from tests.deploy.deployfiles import (
    CONSUMER_SETTLE_SECONDS,
    K8S,
    SECRET_VARIABLES,
    dockerfile,
    k8s_documents,
    k8s_files,
    option,
    quantity,
    yaml_documents,
)

OLDEST = "1.29.0"
NEWEST = kubernetes_validate.latest_version()
NAMESPACE = "delightbridge"
NOT_KUBERNETES = {"Kustomization"}  # a kustomize file, no API object

EXPECTED = {
    ("Namespace", "delightbridge"),
    ("ServiceAccount", "delightbridge"),
    ("ConfigMap", "delightbridge-config"),
    ("Secret", "delightbridge-secrets"),
    ("Deployment", "delightbridge-api"),
    ("Service", "delightbridge-api"),
    ("PodDisruptionBudget", "delightbridge-api"),
    ("Deployment", "delightbridge-consumer"),
    ("HorizontalPodAutoscaler", "delightbridge-consumer"),
    ("PodDisruptionBudget", "delightbridge-consumer"),
    ("CronJob", "delightbridge-renew-watches"),
    ("NetworkPolicy", "delightbridge-default-deny-ingress"),
    ("NetworkPolicy", "delightbridge-api"),
    ("NetworkPolicy", "delightbridge-consumer"),
    ("Ingress", "delightbridge-api"),
}

DOCS = [(path, doc) for path, doc in k8s_documents() if doc["kind"] not in NOT_KUBERNETES]


def _doc_id(item: tuple[Path, dict[str, Any]]) -> str:
    path, doc = item
    return f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"


def _get(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for _, d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for _, doc in DOCS:
        if doc["kind"] == "Deployment":
            specs.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            specs.append((doc["metadata"]["name"],
                          doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


def _containers() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{owner}/{c['name']}", c) for owner, spec in _pod_specs()
            for c in spec["containers"] + spec.get("initContainers", [])]


def _container(deployment: str) -> dict[str, Any]:
    (container,) = _get("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return container


def _port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        assert port in [p["containerPort"] for p in container["ports"]]
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


# ---------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("item", DOCS, ids=_doc_id)
def test_validates_against_the_kubernetes_schema(item: tuple[Path, dict[str, Any]],
                                                 version: str) -> None:
    _, doc = item
    # Raises ValidationError, or SchemaNotFoundError for an unknown kind/apiVersion.
    kubernetes_validate.validate(doc, version, strict=True)


def test_validation_is_strict_and_typed() -> None:
    api = _get("Deployment", "delightbridge-api")
    unknown = copy.deepcopy(api)
    unknown["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    wrong_type = copy.deepcopy(api)
    wrong_type["spec"]["replicas"] = "two"
    missing = copy.deepcopy(api)
    del missing["spec"]["selector"]
    for broken in (unknown, wrong_type, missing):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, NEWEST, strict=True)
    old_api = copy.deepcopy(_get("HorizontalPodAutoscaler", "delightbridge-consumer"))
    old_api["apiVersion"] = "autoscaling/v2beta1"  # removed in Kubernetes 1.25
    with pytest.raises(kubernetes_validate.utils.SchemaNotFoundError):
        kubernetes_validate.validate(old_api, OLDEST, strict=True)


def test_the_expected_objects_in_one_namespace() -> None:
    assert {(d["kind"], d["metadata"]["name"]) for _, d in DOCS} == EXPECTED
    for _, doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "delightbridge"


def test_kustomization_lists_every_file_but_the_secret_template() -> None:
    (kustomization,) = yaml_documents(K8S / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    listed = set(kustomization["resources"])
    files = {p.name for p in k8s_files()} - {"kustomization.yaml"}
    assert listed == files - {"secret.yaml"}, "secret.yaml holds placeholders only"
    image_names = {c["image"].rsplit(":", 1)[0] for _, c in _containers()}
    assert {i["name"] for i in kustomization["images"]} == image_names


# ---------------------------------------------------------------- workloads


def test_labels_and_selectors_match() -> None:
    for _, doc in DOCS:
        kind = doc["kind"]
        if kind == "Deployment":
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), doc["metadata"]["name"]
    api_labels = _get("Deployment", "delightbridge-api")["spec"]["template"]["metadata"]["labels"]
    consumer_labels = (_get("Deployment", "delightbridge-consumer")
                       ["spec"]["template"]["metadata"]["labels"])
    service = _get("Service", "delightbridge-api")["spec"]["selector"]
    assert service.items() <= api_labels.items()
    assert not service.items() <= consumer_labels.items(), "the Service selects the API only"
    for name, labels in (("delightbridge-api", api_labels),
                         ("delightbridge-consumer", consumer_labels)):
        pdb = _get("PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"]
        assert pdb.items() <= labels.items()


def test_api_deployment() -> None:
    deployment = _get("Deployment", "delightbridge-api")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = _container("delightbridge-api")
    args = container["args"]
    assert args[:1] == ["serve"]
    assert option(args, "--host") == "0.0.0.0"
    port = int(option(args, "--port") or 0)
    ops = int(option(args, "--ops-port") or 0)
    assert ops not in (0, port), "readiness and metrics on a port of their own"
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                        ("startupProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert _port(container, get["port"]) == ops, f"{probe} probes another port"
    annotations = spec["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ops
    service_ports = _get("Service", "delightbridge-api")["spec"]["ports"]
    assert [_port(container, p["targetPort"]) for p in service_ports] == [port], \
        "the Service exposes the API port only"
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    assert int(pause[1]) < spec["template"]["spec"]["terminationGracePeriodSeconds"]


def _ingress_rules(name: str) -> list[dict[str, Any]]:
    policy = _get("NetworkPolicy", name)["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    rules: list[dict[str, Any]] = policy["ingress"]
    return rules


def _admitted(rules: list[dict[str, Any]], container: dict[str, Any], port: int) -> list[Any]:
    """The ``from`` of every rule that admits ``port`` (``[]`` in it: from anywhere)."""
    return [rule.get("from", []) for rule in rules
            if any(_port(container, p["port"]) == port for p in rule.get("ports", []))]


def test_network_policies_keep_operations_ports_internal() -> None:
    """Hardening #17 item 7: /metrics and /readyz reachable from the monitoring
    namespace only; the API port and the push port from anywhere; nothing else."""
    deny = _get("NetworkPolicy", "delightbridge-default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    monitoring = [{"namespaceSelector": {"matchLabels": {"delightbridge.io/monitoring": "true"}}}]
    api = _container("delightbridge-api")
    rules = _ingress_rules("delightbridge-api")
    assert _admitted(rules, api, int(option(api["args"], "--ops-port") or 0)) == [monitoring]
    assert _admitted(rules, api, int(option(api["args"], "--port") or 0)) == [[]]
    consumer = _container("delightbridge-consumer")
    rules = _ingress_rules("delightbridge-consumer")
    assert _admitted(rules, consumer, int(option(consumer["args"], "--port") or 0)) == [
        monitoring]
    assert _admitted(rules, consumer, ConsumerConfig().push_port) == [[]]
    for name, labels in (("delightbridge-api", "api"), ("delightbridge-consumer", "consumer")):
        selector = _get("NetworkPolicy", name)["spec"]["podSelector"]["matchLabels"]
        pod = _get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod.items()
        assert selector["app.kubernetes.io/component"] == labels


def test_consumer_deployment_outlives_its_drain() -> None:
    deployment = _get("Deployment", "delightbridge-consumer")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    pod = deployment["spec"]["template"]["spec"]
    container = _container("delightbridge-consumer")
    args = container["args"]
    assert args[0] == "consume"
    port = int(option(args, "--port") or 0)
    drain = float(option(args, "--shutdown-timeout") or 0)
    assert port > 0, "the health port is explicit"
    assert drain > 0, "the drain timeout is explicit"
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                        ("startupProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert _port(container, get["port"]) == port, f"{probe} probes another port"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= drain + CONSUMER_SETTLE_SECONDS + 5, \
        f"terminationGracePeriodSeconds {grace} < drain {drain} + settle + margin"
    assert "lifecycle" not in container, "SIGTERM drains; no preStop hook"


def test_hpa_scales_the_consumer_on_cpu() -> None:
    hpa = _get("HorizontalPodAutoscaler", "delightbridge-consumer")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1", "Deployment", "delightbridge-consumer")
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource"
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    container = _container("delightbridge-consumer")
    assert quantity(container["resources"]["requests"]["cpu"]) > 0, \
        "CPU utilization is relative to the request"
    down = hpa["spec"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 300
    assert all(p["type"] == "Pods" and p["value"] == 1 for p in down["policies"])
    text = (K8S / "consumer.yaml").read_text()
    assert "num_undelivered_messages" in text, "the backlog metric is documented"


def test_commented_backlog_metric_is_a_valid_hpa_metric() -> None:
    """The External metric suggested in consumer.yaml's comment validates as a metric."""
    lines = (K8S / "consumer.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#   - type: External"))
    block = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        block.append(line[len("#   "):])
    metric = yaml.safe_load("\n".join(block))[0]
    hpa = copy.deepcopy(_get("HorizontalPodAutoscaler", "delightbridge-consumer"))
    hpa["spec"]["metrics"] = [metric]
    kubernetes_validate.validate(hpa, OLDEST, strict=True)


def test_cronjob_renews_hourly_without_overlap() -> None:
    """Hourly: each pass renews only the watches that are due (about daily per
    mailbox, spread by a per-service jitter), see delightbridge/sync/watch.py."""
    cron = _get("CronJob", "delightbridge-renew-watches")
    spec = cron["spec"]
    minute, *rest = spec["schedule"].split()
    assert minute.isdigit()
    assert int(minute) < 60
    assert rest == ["*", "*", "*", "*"], "every hour at a fixed minute"
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert 0 < spec["startingDeadlineSeconds"] < 3600, "a missed hour is skipped, not queued"
    assert 0 < job["activeDeadlineSeconds"] < 3600, "a stuck pass ends before the next"
    assert 1 <= job["backoffLimit"] <= 6
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    (container,) = pod["containers"]
    assert container["args"] == ["renew-watches"], "one pass; --loop is for compose"
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1


def test_pods_meet_the_restricted_pod_security_profile() -> None:
    (user,) = dockerfile().all("USER", 1)
    image_uid, _, image_gid = user.args.partition(":")
    namespace = _get("Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for owner, pod in _pod_specs():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, owner
        assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (image_uid, image_gid)
        assert context["seccompProfile"]["type"] == "RuntimeDefault", owner
        assert pod["automountServiceAccountToken"] is False, owner
        assert pod["serviceAccountName"] == "delightbridge"
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key), (owner, key)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        assert all("hostPath" not in v for v in volumes.values()), owner
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, owner
            assert sc["readOnlyRootFilesystem"] is True, owner
            assert sc["capabilities"]["drop"] == ["ALL"], owner
            assert not sc.get("privileged"), owner
            assert "add" not in sc["capabilities"], owner
            # The one writable path: /tmp (DELIGHTBRIDGE_DATA_DIR, tempfile) on an emptyDir.
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert "emptyDir" in volumes[mount["name"]], owner


def test_every_container_has_requests_and_limits() -> None:
    for owner, container in _containers():
        resources = container["resources"]
        for kind in ("cpu", "memory"):
            request = quantity(resources["requests"][kind])
            limit = quantity(resources["limits"][kind])
            assert 0 < request <= limit, f"{owner} {kind}"


def test_one_pinned_image_everywhere() -> None:
    images = {c["image"] for _, c in _containers()}
    assert len(images) == 1, images
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert name, image
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{image}: pin a release tag"
    for owner, container in _containers():
        assert container["imagePullPolicy"] == "IfNotPresent", owner


# ---------------------------------------------------------------- configuration


def test_workloads_read_the_configmap_and_the_secret() -> None:
    for owner, container in _containers():
        refs = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
        assert refs == {("configMapRef", "delightbridge-config"),
                        ("secretRef", "delightbridge-secrets")}, owner
        assert "env" not in container, f"{owner}: settings belong in the ConfigMap/Secret"


def test_configmap_holds_real_non_secret_settings(tmp_path: Path) -> None:
    data = _get("ConfigMap", "delightbridge-config")["data"]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values are strings"
    assert set(data) <= set(variable_names()), set(data) - set(variable_names())
    assert not set(data) & SECRET_VARIABLES
    assert "PUBSUB_EMULATOR_HOST" not in data, "production talks to real Pub/Sub"
    empty = tmp_path / "empty.env"
    empty.write_text("")
    settings = Settings.from_env(data, env_file=empty)  # the service's own parsers
    assert settings.log_format == "json"
    assert settings.subscription_path == "projects/my-gcp-project/subscriptions/gmail-push-sync"


def test_secret_template_has_every_secret_and_only_placeholders() -> None:
    secret = _get("Secret", "delightbridge-secrets")
    assert secret["type"] == "Opaque"
    assert "data" not in secret, "stringData: readable placeholders, no base64"
    values = secret["stringData"]
    assert set(values) == SECRET_VARIABLES
    for key, value in values.items():
        assert "REPLACE_ME" in value, f"{key} looks like a real value"


def test_the_ingress_serves_the_public_callback_over_tls_on_public_base_url() -> None:
    """Google returns the admin's browser to <PUBLIC_BASE_URL>/api/services/oauth/callback:
    the Ingress must route it to the API's http port (never ops), over TLS, on that host."""
    ingress = _get("Ingress", "delightbridge-api")
    config = _get("ConfigMap", "delightbridge-config")["data"]
    host = urlsplit(config["PUBLIC_BASE_URL"]).hostname
    assert config["PUBLIC_BASE_URL"].startswith("https://")
    assert [tls["hosts"] for tls in ingress["spec"]["tls"]] == [[host]]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == host
    routes = {(p["path"], p["pathType"]): p["backend"]["service"]
              for p in rule["http"]["paths"]}
    callback = "/api/services/oauth/callback"
    assert any(callback.startswith(path) for path, kind in routes if kind == "Prefix")
    assert {(s["name"], s["port"]["name"]) for s in routes.values()} == {
        ("delightbridge-api", "http")}
