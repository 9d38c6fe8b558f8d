"""Offline checks of what ships for deployment: deploy/*.yaml against the Kubernetes JSON schemas
(kubernetes-validate, strict), the fields that matter to blueflow, the Grafana dashboard's metric names,
the Dockerfile, and docker-compose.yml against the local stack's settings (devstack/stack.py)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from devstack import stack  # noqa: E402
from streams import metrics  # noqa: E402
from streams.option_table import BLUEFLOW_FLAG_NAMES, OPTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.31.0"  # IBM Cloud Kubernetes Service supported versions: 1.30-1.33 at the time of writing
SECRET_ENVS = {o.env for o in OPTIONS if o.secret} | {"IBM_SERVICE_INSTANCE"}
KNOWN_ENVS = {o.env for o in OPTIONS}


def manifests() -> dict[str, dict]:
    out = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[doc["kind"]] = doc
    return out


def container(docs) -> dict:
    (c,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_every_manifest_is_valid_for_kubernetes_strictly():
    kv = pytest.importorskip("kubernetes_validate")
    docs = manifests()
    assert {"Namespace", "Secret", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "Kustomization"} <= set(docs)
    for kind, doc in docs.items():
        if kind == "Kustomization":
            continue
        kv.validate(doc, K8S_VERSION, strict=True)  # raises ValidationError with the path of the problem


def test_kustomization_lists_every_manifest_but_the_placeholder_secret():
    listed = set(manifests()["Kustomization"]["resources"])
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files - {"secret.yaml"}


def test_deployment_runs_blueflow_with_kentik_flags_probes_limits_and_non_root():
    docs = manifests()
    c = container(docs)
    flags = {a.split("=", 1)[0].lstrip("-") for a in c["args"]}
    assert flags == set(BLUEFLOW_FLAG_NAMES)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8083}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}  # dependencies: NotReady
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}  # restart only when it helps
    assert docs["Service"]["spec"]["publishNotReadyAddresses"] is True  # /metrics of a NotReady worker
    assert c["livenessProbe"]["initialDelaySeconds"] >= 30
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"^USER (\d+)", dockerfile, re.M).group(1))
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert re.findall(r"^WORKDIR (\S+)", dockerfile, re.M)[-1] in mounts  # Faust's data dir is writable
    labels = docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert docs["Deployment"]["spec"]["template"]["metadata"]["labels"] == labels
    assert docs["Service"]["spec"]["selector"] == labels == docs["PodDisruptionBudget"]["spec"]["selector"][
        "matchLabels"]


def test_secrets_come_from_the_secret_and_settings_from_the_configmap():
    docs = manifests()
    c = container(docs)
    from_secret = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert set(from_secret) == SECRET_ENVS - {"BLUEFLOW_COS_HMAC_SECRET_KEY"}
    assert all(ref["name"] == docs["Secret"]["metadata"]["name"] and ref["key"] == name
               for name, ref in from_secret.items())
    assert set(docs["Secret"]["stringData"]) == set(from_secret)
    assert {e["name"] for e in c["env"]} <= KNOWN_ENVS
    assert [s["configMapRef"]["name"] for s in c["envFrom"]] == [docs["ConfigMap"]["metadata"]["name"]]
    config = docs["ConfigMap"]["data"]
    assert set(config) <= KNOWN_ENVS and not set(config) & SECRET_ENVS
    assert config["BLUEFLOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and config["BLUEFLOW_REPLICATION"] == "3"
    assert all(isinstance(v, str) for v in config.values())


def test_hpa_scales_the_deployment_up_to_the_partition_count():
    docs = manifests()
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": docs["Deployment"]["metadata"]["name"]}
    assert 1 <= hpa["minReplicas"] <= docs["Deployment"]["spec"]["replicas"] <= hpa["maxReplicas"]
    assert hpa["maxReplicas"] == int(docs["ConfigMap"]["data"]["BLUEFLOW_PARTITIONS"])
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] < hpa["minReplicas"]


def test_grafana_dashboard_uses_only_metrics_the_workers_export():
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    exported = {f.name + suffix for f in metrics.REGISTRY.collect() for suffix in suffixes.get(f.type, ("",))}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(blueflow_[a-z_]+)", e)}
    assert used and used <= exported, used - exported
    for needed in ("blueflow_kentik_requests_total", "blueflow_cos_operations_total", "blueflow_stage_seconds_bucket",
                   "blueflow_deadlettered_total", "blueflow_consumer_lag", "blueflow_chf_delivered_total"):
        assert needed in used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dockerfile_runs_blueflow_as_non_root_on_8083():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["blueflow"\]', text, re.M)
    assert re.search(r"^EXPOSE 8083$", text, re.M)
    assert re.search(r"^USER \d+$", text, re.M) and not re.search(r"^USER (0|root)$", text, re.M)
    assert "/healthz" in text


# ------------------------------------------------------------------------------------- docker compose
COMPOSE_PORTS = {name: 19000 + offset for name, offset in stack.PORT_OFFSETS.items()}


def in_compose(value: str) -> str:
    """A devstack setting as seen inside the compose network: 127.0.0.1:<port> → <service>:<port>."""
    by_port = {port: name for name, port in COMPOSE_PORTS.items()}
    return re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"{by_port[int(m.group(1))]}:{m.group(1)}", value)


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_local_stacks_components(compose):
    services = set(compose["services"])
    assert services == (set(stack.PORT_OFFSETS) - {"kafka-controller"}) | {"generator", "worker"}


def test_compose_ports_match_the_local_stack(compose):
    s = compose["services"]
    env = s["kafka"]["environment"]
    assert env["KAFKA_LISTENERS"].startswith(f"PLAINTEXT://:{COMPOSE_PORTS['kafka']},"
                                             f"CONTROLLER://:{COMPOSE_PORTS['kafka-controller']},")
    assert env["KAFKA_ADVERTISED_LISTENERS"].startswith(f"PLAINTEXT://kafka:{COMPOSE_PORTS['kafka']},")
    for name in ("s3proxy", "s3proxy-open"):
        assert s[name]["environment"]["S3PROXY_ENDPOINT"] == f"http://0.0.0.0:{COMPOSE_PORTS[name]}"
    for name in ("iam", "vpc", "kentik", "cos-iam-proxy"):
        args = s[name]["entrypoint"]
        assert args[args.index("--port") + 1] == str(COMPOSE_PORTS[name]), name
    proxy = s["cos-iam-proxy"]["entrypoint"]
    assert proxy[proxy.index("--upstream") + 1] == f"http://s3proxy-open:{COMPOSE_PORTS['s3proxy-open']}"


def test_compose_keys_and_settings_match_the_local_stack(compose):
    settings = {k: in_compose(v) for k, v in stack.settings(COMPOSE_PORTS).items()}
    s = compose["services"]
    worker = s["worker"]["environment"]
    # workers take COS's production path (IAM API key through the bearer-token proxy), as the tests do
    expected = dict(settings, BLUEFLOW_COS_ENDPOINT=settings["BLUEFLOW_COS_IAM_ENDPOINT"])
    for key in ("BLUEFLOW_COS_IAM_ENDPOINT", "BLUEFLOW_KENTIK_EMULATOR", "BLUEFLOW_WORLD_SEED",
                "BLUEFLOW_COS_HMAC_ACCESS_KEY", "BLUEFLOW_COS_HMAC_SECRET_KEY"):
        expected.pop(key)
    assert {k: worker.get(k) for k in expected} == expected
    assert set(worker) <= KNOWN_ENVS
    generator = s["generator"]["environment"]
    for key in ("BLUEFLOW_COS_ENDPOINT", "BLUEFLOW_COS_HMAC_ACCESS_KEY", "BLUEFLOW_COS_HMAC_SECRET_KEY",
                "BLUEFLOW_BUCKET", "BLUEFLOW_WORLD_SEED", "BLUEFLOW_REGIONS"):
        assert generator[key] == settings[key], key
    s3 = s["s3proxy"]["environment"]
    assert (s3["S3PROXY_IDENTITY"], s3["S3PROXY_CREDENTIAL"]) == (stack.HMAC_ACCESS_KEY, stack.HMAC_SECRET_KEY)
    vpc = s["vpc"]["entrypoint"]
    assert vpc[vpc.index("--seed") + 1] == str(stack.WORLD_SEED)
    assert vpc[vpc.index("--regions") + 1] == ",".join(stack.REGIONS)
    assert vpc[vpc.index("--iam-url") + 1] == settings["BLUEFLOW_IAM_URL"]
    kentik = s["kentik"]["entrypoint"]
    assert (kentik[kentik.index("--token") + 1], kentik[kentik.index("--email") + 1]) == (stack.KENTIK_TOKEN,
                                                                                          stack.KENTIK_EMAIL)
    assert s["worker"]["deploy"]["replicas"] >= 2


def test_readme_configuration_reference_lists_every_option():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Configuration"):readme.index("## Production on IBM Cloud")]
    for option in OPTIONS:
        assert f"`{option.env}`" in table, option.env
        if not option.secret:
            assert f"`--{option.name}`" in table, option.name


def test_compose_worker_healthcheck_is_liveness(compose):
    """Docker's health of a worker is liveness (/healthz): what a restarter may act on; readiness is /readyz."""
    check = compose["services"]["worker"]["healthcheck"]
    assert "/healthz" in " ".join(check["test"]) and check["start_period"]
