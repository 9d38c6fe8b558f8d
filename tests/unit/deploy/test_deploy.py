"""Offline checks of what ships for deployment: deploy/*.yaml against the Kubernetes JSON schemas
(kubernetes-validate, strict), the fields that matter to blueflow, the Grafana dashboard's metric names,
the Dockerfile, and docker-compose.yml against the local stack's settings (devstack/stack/)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from devstack.stack import env as stack_env  # noqa: E402
from streams.observe import metrics, source_metrics  # noqa: E402,F401  (source_metrics: the per-source series)
from streams.config.option_table import BLUEFLOW_FLAG_NAMES, OPTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.31.0"  # IBM Cloud Kubernetes Service supported versions: 1.30-1.33 at the time of writing
SECRET_ENVS = {o.env for o in OPTIONS if o.secret} | {"IBM_SERVICE_INSTANCE"}
KNOWN_ENVS = {o.env for o in OPTIONS}


def all_manifests() -> dict[str, dict]:
    """Every manifest by `kind/name`."""
    out = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[f"{doc['kind']}/{doc.get('metadata', {}).get('name', '')}"] = doc
    return out


def manifests() -> dict[str, dict]:
    """By kind (the Service is the one named blueflow)."""
    return {key.split("/")[0]: doc for key, doc in all_manifests().items() if key != "Service/blueflow-pods"}


def container(docs) -> dict:
    (c,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_every_manifest_is_valid_for_kubernetes_strictly():
    kv = pytest.importorskip("kubernetes_validate")
    docs = manifests()
    assert {"Namespace", "Secret", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "Kustomization"} <= set(docs)
    for key, doc in all_manifests().items():
        if key.startswith("Kustomization/"):
            continue
        kv.validate(doc, K8S_VERSION, strict=True)  # raises ValidationError with the path of the problem


def test_a_headless_service_resolves_to_every_worker_pod():
    docs = all_manifests()
    pods = docs["Service/blueflow-pods"]["spec"]
    labels = docs["Deployment/blueflow"]["spec"]["template"]["metadata"]["labels"]
    assert pods["clusterIP"] == "None" and pods["publishNotReadyAddresses"] is True
    assert pods["selector"].items() <= labels.items() and pods["ports"][0]["port"] == 8083


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


def test_grafana_dashboard_shows_backlog_age_per_source_worker_memory_cpu_and_health():
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for needed in ("max by (source) (blueflow_source_backlog_objects", "max by (source) (blueflow_source_oldest_object_age_seconds",
                   "process_resident_memory_bytes", "rate(process_cpu_seconds_total", "min by (instance) (blueflow_healthy",
                   "min by (source) (blueflow_source_healthy", "min by (instance) (blueflow_ready",
                   "min by (dependency) (blueflow_dependency_up", "rate(blueflow_ipfix_records_total",
                   "rate(blueflow_ipfix_pace_wait_seconds_total", "rate(blueflow_ipfix_send_errors_total"):
        assert needed in exprs
    exported = {f.name for f in metrics.REGISTRY.collect()}
    assert {"process_resident_memory_bytes", "process_cpu_seconds"} <= exported
    spots = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in dashboard["panels"]]
    assert len(spots) == len(set(spots))  # no panel drawn over another


def test_dockerfile_runs_blueflow_as_non_root_on_8083():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["blueflow"\]', text, re.M)
    assert re.search(r"^EXPOSE 8083$", text, re.M)
    assert re.search(r"^USER \d+$", text, re.M) and not re.search(r"^USER (0|root)$", text, re.M)
    assert "/healthz" in text


def test_dockerfile_healthcheck_follows_the_port_variable_and_waits_for_the_start():
    text = (ROOT / "Dockerfile").read_text()
    (check,) = re.findall(r"^HEALTHCHECK .*$", text, re.M)
    assert "BLUEFLOW_HTTP_PORT" in check and ":8083/" not in check
    start = re.search(r"--start-period=(\d+)s", check)
    assert start and int(start.group(1)) >= 60
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M) and "--stop-timeout" in text


def test_the_image_installs_the_locked_dependencies_with_hashes():
    from devstack.pylock import dependencies, locked, unsatisfied

    text = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock" in text
    assert re.search(r"^RUN pip wheel .*--require-hashes .*-r requirements.lock$", text, re.M)
    lock = (ROOT / "requirements.lock").read_text()
    pins = locked(lock)
    assert unsatisfied(dependencies(), pins) == []  # every range of pyproject.toml, pinned inside it
    assert lock.count("--hash=sha256:") == len(pins) >= len(dependencies())
    assert "faust-streaming" in pins


def test_lock_lines_pin_each_package_of_a_pip_report_with_its_hash():
    from devstack.pylock import lock_lines, locked, unsatisfied

    report = {"install": [{"metadata": {"name": "Rich", "version": "14.1.0"},
                           "download_info": {"url": "u", "archive_info": {"hashes": {"sha256": "ab"}}}},
                          {"metadata": {"name": "click", "version": "8.3.0"},
                           "download_info": {"url": "u", "archive_info": {"hashes": {"sha256": "cd"}}}}]}
    lines = lock_lines(report)
    assert lines == ["click==8.3.0 \\\n    --hash=sha256:cd", "rich==14.1.0 \\\n    --hash=sha256:ab"]
    assert locked("\n".join(lines)) == {"click": "8.3.0", "rich": "14.1.0"}
    assert unsatisfied(["click>=8.1,<9", "rich>=15"], {"click": "8.3.0", "rich": "14.1.0"}) == ["rich>=15: locked 14.1.0"]


# ------------------------------------------------------------------------------------- docker compose
COMPOSE_PORTS = {name: 19000 + offset for name, offset in stack_env.PORT_OFFSETS.items()}


def in_compose(value: str) -> str:
    """A devstack setting as seen inside the compose network: 127.0.0.1:<port> → <service>:<port>."""
    by_port = {port: name for name, port in COMPOSE_PORTS.items()}
    return re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"{by_port[int(m.group(1))]}:{m.group(1)}", value)


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_publishes_only_on_loopback_and_waits_for_the_graceful_stop(compose):
    from streams.ops.worker_cli import STOP_GRACE_S

    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    grace = compose["services"]["worker"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > STOP_GRACE_S


def test_compose_has_the_local_stacks_components(compose):
    services = {name for name, service in compose["services"].items() if not service.get("profiles")}
    assert services == (set(stack_env.PORT_OFFSETS) - {"kafka-controller"}) | {"generator", "worker"}
    embedded = compose["services"]["worker-embedded"]  # opt-in: the embedded Kafka, data on a volume
    assert embedded["environment"]["BLUEFLOW_KAFKA_BOOTSTRAP"] == "" and "kafka" not in embedded["depends_on"]
    assert embedded["volumes"] == ["blueflow-data:/var/lib/blueflow"]


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
    settings = {k: in_compose(v) for k, v in stack_env.settings(COMPOSE_PORTS).items()}
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
    assert (s3["S3PROXY_IDENTITY"], s3["S3PROXY_CREDENTIAL"]) == (stack_env.HMAC_ACCESS_KEY, stack_env.HMAC_SECRET_KEY)
    vpc = s["vpc"]["entrypoint"]
    assert vpc[vpc.index("--seed") + 1] == str(stack_env.WORLD_SEED)
    assert vpc[vpc.index("--regions") + 1] == ",".join(stack_env.REGIONS)
    assert vpc[vpc.index("--iam-url") + 1] == settings["BLUEFLOW_IAM_URL"]
    kentik = s["kentik"]["entrypoint"]
    assert (kentik[kentik.index("--token") + 1], kentik[kentik.index("--email") + 1]) == (stack_env.KENTIK_TOKEN,
                                                                                          stack_env.KENTIK_EMAIL)
    assert s["worker"]["deploy"]["replicas"] >= 2


def test_readme_configuration_reference_lists_every_option():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Configuration"):readme.index("## Production on IBM Cloud")]
    for option in OPTIONS:
        assert f"`{option.env}`" in table, option.env
        if not option.secret:
            assert f"`--{option.name}`" in table, option.name


# ------------------------------------------------------------------------------ the embedded-Kafka variant
def embedded_manifests() -> dict[str, dict]:
    out = {}
    for path in sorted((DEPLOY / "embedded").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[doc["kind"]] = doc
    return out


def test_embedded_variant_is_one_replica_with_its_data_on_a_claim_and_no_kafka_settings():
    kv = pytest.importorskip("kubernetes_validate")
    docs = embedded_manifests()
    assert set(docs) == {"Kustomization", "PersistentVolumeClaim", "Deployment"}
    assert set(docs["Kustomization"]["resources"]) == {"pvc.yaml", "deployment.yaml"}
    for kind, doc in docs.items():
        if kind != "Kustomization":
            kv.validate(doc, K8S_VERSION, strict=True)
    spec = docs["Deployment"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}  # never two brokers on one volume
    c = container(docs)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert not {n for n in env if n.startswith("BLUEFLOW_KAFKA_")} and "envFrom" not in c
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    data = next(m for m in c["volumeMounts"] if m["mountPath"] == env["BLUEFLOW_DATA_DIR"])
    claim = volumes[data["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim == docs["PersistentVolumeClaim"]["metadata"]["name"]
    assert docs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"BLUEFLOW_DATA_DIR={env['BLUEFLOW_DATA_DIR']}" in dockerfile
    assert re.search(rf"^VOLUME {env['BLUEFLOW_DATA_DIR']}$", dockerfile, re.M)
    shared = manifests()  # same name, labels and port as the cluster variant: deploy/service.yaml serves both
    assert docs["Deployment"]["spec"]["selector"] == shared["Deployment"]["spec"]["selector"]
    assert {p["name"] for p in c["ports"]} == {p["targetPort"] for p in shared["Service"]["spec"]["ports"]}


def test_readme_defaults_are_the_option_tables():
    """The Configuration table's default column says what --help says (plan_id and export_id: 0)."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Configuration"):readme.index("## Production on IBM Cloud")]
    for option in OPTIONS:
        if option.secret or not option.default or option.kind == "bool":
            continue
        (row,) = [line for line in table.splitlines() if line.startswith(f"| `--{option.name}` |")]
        default = row.split("|")[3].strip()
        assert default.startswith(f"`{option.default}`"), (option.name, default)


def test_readme_states_no_claim_known_false():
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "If-Match DELETE)" not in readme and "compared right before a single-key" not in readme
    assert "Event Streams (any plan)" not in readme
    assert "`text` (one line per record)" not in readme and "One line per record on stdout" not in readme
    assert "### Signals and exit codes" in readme and "SIGUSR1" in readme and "--stop-timeout" in readme


def test_compose_worker_healthcheck_is_liveness(compose):
    """Docker's health of a worker is liveness (/healthz): what a restarter may act on; readiness is /readyz."""
    check = compose["services"]["worker"]["healthcheck"]
    assert "/healthz" in " ".join(check["test"]) and check["start_period"]
