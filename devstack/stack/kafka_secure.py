"""The local Kafka as strict as IBM Event Streams where it can be.

* `topic_policy`: compiles devstack/conf/EventStreamsTopicPolicy.java (a Kafka create-topic policy holding
  IBM's table of topic settings) with the `javac` next to the stack's `java` or on PATH; without a javac the
  broker runs without it and the stack says so (tests/unit/config/test_kafka_profile.py holds the plan to the same
  table either way).
* `tls_material` + `sasl_ssl_properties`: an opt-in SASL_SSL listener (BLUEFLOW_DEVSTACK_KAFKA_SASL_SSL=1),
  what Event Streams speaks: SASL mechanism PLAIN, user `token`, the API key as password, TLS with a
  certificate signed by a CA made at stack start (openssl; PEM files, which Kafka 4 reads directly).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
POLICY_CLASS = "EventStreamsTopicPolicy"
SASL_SSL_FLAG = "BLUEFLOW_DEVSTACK_KAFKA_SASL_SSL"
SASL_USER = "token"
SASL_PASSWORD = "devstack-event-streams-api-key"


SASL_SSL_PORT_OFFSET = 94  # from BLUEFLOW_DEVSTACK_PORT_BASE, beside Kafka's 92 (broker) and 93 (controller)


def sasl_ssl_port() -> int:
    return int(os.environ.get("BLUEFLOW_DEVSTACK_PORT_BASE", "19000")) + SASL_SSL_PORT_OFFSET


def sasl_ssl_wanted(environ=os.environ) -> bool:
    return environ.get(SASL_SSL_FLAG, "") == "1"


def _javac(java: str) -> str | None:
    beside = Path(java).resolve().parent / "javac"
    return str(beside) if beside.exists() else shutil.which("javac")


def topic_policy(java: str, kafka_jars: Path, out_dir: Path, log: Callable[[str], None]) -> Path | None:
    """A directory holding the compiled policy class (compiled again when the source is newer), or None."""
    source = CONF_DIR / f"{POLICY_CLASS}.java"
    compiled = out_dir / f"{POLICY_CLASS}.class"
    if compiled.exists() and compiled.stat().st_mtime >= source.stat().st_mtime:
        return out_dir
    javac = _javac(java)
    if javac is None:
        log("devstack: no javac: Kafka runs without the Event Streams topic policy")
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([javac, "--release", "17", "-cp", str(kafka_jars / "*"), "-d", str(out_dir), str(source)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        log(f"devstack: the Event Streams topic policy did not compile, Kafka runs without it: "
            f"{(done.stdout + done.stderr).strip()[-500:]}")
        return None
    return out_dir


def policy_properties() -> str:
    return f"\n# IBM Event Streams' rules for topic settings (devstack/conf/{POLICY_CLASS}.java)\n" \
           f"create.topic.policy.class.name={POLICY_CLASS}\n"


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=str(cwd), capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {(done.stdout + done.stderr).strip()[-500:]}")


def tls_material(out_dir: Path) -> dict[str, Path]:
    """A fresh CA and a broker certificate for 127.0.0.1/localhost signed by it: {"ca": PEM certificate,
    "server": PEM private key (PKCS#8) followed by the certificate chain}."""
    if shutil.which("openssl") is None:
        raise RuntimeError(f"{SASL_SSL_FLAG}=1 needs openssl on PATH to make the listener's CA")
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "7",
             "-subj", "/CN=blueflow devstack CA", cwd=out_dir)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=out_dir)
    (out_dir / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "7", "-extfile", "san.cnf", cwd=out_dir)
    server = out_dir / "server.pem"
    server.write_text((out_dir / "server.key").read_text() + (out_dir / "server.crt").read_text()
                      + (out_dir / "ca.pem").read_text())
    return {"ca": out_dir / "ca.pem", "server": server}


def sasl_ssl_properties(text: str, broker_port: int, sasl_port: int, server_pem: Path) -> str:
    """The rendered server.properties with a SASL_SSL listener on `sasl_port` added."""
    plain = f"PLAINTEXT://127.0.0.1:{broker_port}"
    sasl = f"SASL_SSL://127.0.0.1:{sasl_port}"
    lines = []
    for line in text.splitlines():
        if line.startswith("listeners="):
            line += f",{sasl}"
        elif line.startswith("advertised.listeners="):
            line = f"advertised.listeners={plain},{sasl}"
        elif line.startswith("listener.security.protocol.map="):
            line += ",SASL_SSL:SASL_SSL"
        lines.append(line)
    jaas = (f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{SASL_USER}="{SASL_PASSWORD}";')
    lines += ["", "# SASL_SSL as IBM Event Streams speaks it (devstack/stack/kafka_secure.py)",
              "sasl.enabled.mechanisms=PLAIN",
              "listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN",
              f"listener.name.sasl_ssl.plain.sasl.jaas.config={jaas}",
              "listener.name.sasl_ssl.ssl.keystore.type=PEM",
              f"listener.name.sasl_ssl.ssl.keystore.location={server_pem}",
              "ssl.enabled.protocols=TLSv1.2,TLSv1.3"]
    return "\n".join(lines) + "\n"


def sasl_ssl_settings(port: int, ca: Path) -> dict[str, str]:
    """What `.devstack/env` says about the SASL_SSL listener (not the BLUEFLOW_KAFKA_* names: commands run
    on the stack (blueflow-dev worker, the tests) keep using the plain listener unless told otherwise)."""
    return {"BLUEFLOW_DEVSTACK_KAFKA_SASL_SSL_BOOTSTRAP": f"127.0.0.1:{port}",
            "BLUEFLOW_DEVSTACK_KAFKA_CA": str(ca), "BLUEFLOW_DEVSTACK_KAFKA_SASL_PASSWORD": SASL_PASSWORD}


def matches(env: dict[str, str], environ=os.environ) -> bool:
    """Whether a running stack (its env) has the SASL_SSL listener this process asks for, if it asks."""
    return not sasl_ssl_wanted(environ) or bool(env.get("BLUEFLOW_DEVSTACK_KAFKA_SASL_SSL_BOOTSTRAP"))
