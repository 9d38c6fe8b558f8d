"""The local stack's jars come by the committed lock: every file checked by size and SHA-256, no Maven."""
from __future__ import annotations

import hashlib
import http.server
import io
import re
import shutil
import threading
from pathlib import Path

import pytest

from devstack import jarlock
from streams.embedded import jars
from streams.embedded.jars import JarError


# ---------------------------------------------------------------- the committed lock

def test_the_committed_lock_matches_the_poms_and_lists_every_jar_once():
    lock = jars.load_lock()  # raises if a pom changed since the lock was made
    assert set(lock["components"]) == set(jars.COMPONENTS)
    for name, comp in lock["components"].items():
        pom = jars.MAVEN_DIR / comp["pom"]
        assert comp["version"] == jarlock.pom_property(pom, jars.COMPONENTS[name])
        names = [jars.jar_name(e) for e in comp["jars"]]
        assert len(names) == len(set(names)) > 10
        for e in comp["jars"]:
            group, artifact, version = e["coordinates"].split(":")[:3]
            assert e["path"].startswith(f"{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}")
            assert e["path"].endswith(".jar") and e["size"] > 0 and re.fullmatch(r"[0-9a-f]{64}", e["sha256"])
    assert jars.versions(lock) == {"kafka": "4.1.1", "s3proxy": "4.1.0"}


def test_a_changed_pom_makes_the_lock_stale_but_a_comment_does_not(tmp_path):
    for pom in jars.MAVEN_DIR.glob("*.pom.xml"):
        shutil.copy(pom, tmp_path / pom.name)
    kafka = tmp_path / "kafka.pom.xml"
    kafka.write_text(kafka.read_text().replace("<project ", "<!-- a note -->\n<project ", 1))
    jars.load_lock(maven_dir=tmp_path)
    kafka.write_text(kafka.read_text().replace("<kafka.version>4.1.1<", "<kafka.version>4.2.0<"))
    with pytest.raises(JarError, match=r"kafka\.pom\.xml changed since jars\.lock\.json was made.*devstack\.jars lock"):
        jars.load_lock(maven_dir=tmp_path)


def test_parse_dependency_list():
    text = """
The following files have been resolved:
   org.apache.kafka:kafka-clients:jar:4.1.1:compile:/m2/org/apache/kafka/kafka-clients/4.1.1/kafka-clients-4.1.1.jar -- module kafka.clients (auto)
   io.netty:netty-transport-native-epoll:jar:linux-x86_64:4.1.118.Final:runtime:/m2/io/netty/x.jar
   org.example:a-bom:pom:1.0:import:/m2/org/example/a-bom-1.0.pom
"""
    assert jarlock.parse_dependency_list(text) == [
        {"coordinates": "org.apache.kafka:kafka-clients:4.1.1",
         "path": "org/apache/kafka/kafka-clients/4.1.1/kafka-clients-4.1.1.jar",
         "local": "/m2/org/apache/kafka/kafka-clients/4.1.1/kafka-clients-4.1.1.jar"},
        {"coordinates": "io.netty:netty-transport-native-epoll:4.1.118.Final:linux-x86_64",
         "path": "io/netty/netty-transport-native-epoll/4.1.118.Final/"
                 "netty-transport-native-epoll-4.1.118.Final-linux-x86_64.jar",
         "local": "/m2/io/netty/x.jar"},
    ]


def test_mismatch_and_stamp():
    entry = {"coordinates": "g:a:1", "path": "g/a/1/a-1.jar", "size": 3, "sha256": "ab" * 32}
    assert jars.mismatch(entry, 3, "ab" * 32) is None
    assert jars.mismatch(entry, 4, "ab" * 32) == "4 bytes, the lock says 3"
    assert "SHA-256 " + "cd" * 32 in jars.mismatch(entry, 3, "cd" * 32)
    comp = {"version": "1", "jars": [entry]}
    assert jars.stamp("x", comp).startswith("x 1 lock:")
    assert jars.stamp("x", comp) != jars.stamp("x", {"version": "1", "jars": [dict(entry, sha256="cd" * 32)]})


# ---------------------------------------------------------------- fetching from a repository

class Repo:
    """A Maven-layout repository served over HTTP from a directory; counts the requests per path."""

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        repo = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):  # noqa: N802
                repo.requests.append(self.path.lstrip("/"))
                super().do_GET()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def publish(self, coords: str, content: bytes) -> dict:
        group, artifact, version = coords.split(":")
        path = f"{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_bytes(content)
        return {"coordinates": coords, "path": path, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}


@pytest.fixture
def repo(tmp_path):
    r = Repo(tmp_path / "repo")
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BLUEFLOW_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _lock(**components: list[dict]) -> dict:
    return {"components": {n: {"version": "1.0", "jars": js} for n, js in components.items()}}


def _contents(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir()}


def test_missing_jars_are_downloaded_verified_and_reused(repo, cache):
    a = repo.publish("org.x:a:1.0", b"A" * 3000)
    b = repo.publish("org.x:b:2.0", b"B" * 5000)
    c = repo.publish("org.y:c:1.0", b"C" * 10)
    lock = _lock(alpha=[a, b], beta=[c])
    logged: list[str] = []
    dirs = jars.ensure(log=logged.append, repository=repo.url, lock=lock)
    assert dirs == {"alpha": cache / "alpha-1.0", "beta": cache / "beta-1.0"}
    assert _contents(dirs["alpha"]) == {"a-1.0.jar": b"A" * 3000, "b-2.0.jar": b"B" * 5000,
                                        ".complete": jars.stamp("alpha", lock["components"]["alpha"]).encode()}
    assert set(_contents(dirs["beta"])) == {"c-1.0.jar", ".complete"}
    assert sorted(repo.requests) == sorted([a["path"], b["path"], c["path"]])
    assert "3 jars" in logged[0] and "3 jars verified" in logged[-1]
    assert sorted(p.name for p in cache.iterdir()) == ["alpha-1.0", "beta-1.0"]  # no staging left behind

    repo.requests.clear()
    assert jars.ensure(log=logged.append, repository=repo.url, lock=lock) == dirs
    assert repo.requests == []


def test_a_jar_with_the_wrong_hash_is_an_error_and_is_discarded(repo, cache):
    good = repo.publish("org.x:good:1.0", b"good")
    bad = dict(repo.publish("org.x:evil:1.0", b"tampered"), sha256="0" * 64)
    with pytest.raises(JarError) as err:
        jars.ensure(log=lambda _m: None, repository=repo.url, lock=_lock(alpha=[good, bad]))
    msg = str(err.value)
    assert "1 of 2 jars failed" in msg and "org.x:evil:1.0" in msg and "0" * 64 in msg and "discarded" in msg
    assert not cache.exists() or list(cache.rglob("*")) == []  # nothing half-made stays in the cache


def test_an_unreachable_jar_names_its_url(repo, cache):
    missing = {"coordinates": "org.x:gone:1.0", "path": "org/x/gone/1.0/gone-1.0.jar", "size": 1, "sha256": "0" * 64}
    with pytest.raises(JarError, match=r"could not download org\.x:gone:1\.0 from http://127\.0\.0\.1:\d+/org/x/gone"):
        jars.ensure(log=lambda _m: None, repository=repo.url, lock=_lock(alpha=[missing]))


def test_a_cache_filled_by_maven_is_adopted_and_a_changed_lock_refetches_only_what_changed(repo, cache):
    a = repo.publish("org.x:a:1.0", b"A" * 100)
    b = repo.publish("org.x:b:1.0", b"B" * 100)
    target = cache / "alpha-1.0"
    target.mkdir(parents=True)
    (target / "a-1.0.jar").write_bytes(b"A" * 100)
    (target / "b-1.0.jar").write_bytes(b"B" * 100)
    (target / ".complete").write_text("alpha 1.0\n")  # the marker of the Maven-based fetch
    jars.ensure(log=lambda _m: None, repository=repo.url, lock=_lock(alpha=[a, b]))
    assert repo.requests == [] and (target / ".complete").read_text().startswith("alpha 1.0 lock:")

    b2 = repo.publish("org.x:b:1.1", b"b" * 50)  # the lock now wants b 1.1 instead of b 1.0
    jars.ensure(log=lambda _m: None, repository=repo.url, lock=_lock(alpha=[a, b2]))
    assert repo.requests == [b2["path"]]
    assert sorted(p.name for p in target.iterdir()) == [".complete", "a-1.0.jar", "b-1.1.jar"]


def test_progress_rewrites_one_line_on_a_terminal_and_logs_lines_otherwise(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    p = jars.Progress(2, 2 * 1024 * 1024, log=lambda _m: pytest.fail("a terminal gets no log lines"), stream=tty)
    p.shown -= 1
    p.add(1024 * 1024, files=1)
    p.finish()
    assert tty.getvalue().count("\r") == 2 and tty.getvalue().endswith("\n")
    assert "jars: 1/2 files, 1.0/2.0 MB" in tty.getvalue()

    logged: list[str] = []
    p = jars.Progress(4, 4096, log=logged.append, stream=io.StringIO(), every=0.0)
    p.add(1024, files=1)
    p.add(1024, files=1)
    p.finish()
    assert [line.split(" (")[0] for line in logged] == ["  jars: 1/4 files, 0.0/0.0 MB", "  jars: 2/4 files, 0.0/0.0 MB"]


def test_lock_command_without_maven_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JarError, match=r"needs Apache Maven \(mvn\)"):
        jarlock.write_lock(log=lambda _m: None, path=tmp_path / "lock.json")
    assert not (tmp_path / "lock.json").exists()
