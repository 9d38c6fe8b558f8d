"""The Apache Kafka jars (and the local stack's S3Proxy jars), fetched by the committed lock file, no Maven needed.

`streams/embedded/maven/jars.lock.json` (package data) lists, per component, every runtime jar: Maven coordinates, its path in the
Maven repository, size and SHA-256. `ensure()` downloads the missing jars into the cache
(~/.cache/blueflow/jars/<component>-<version>, or under $BLUEFLOW_CACHE) in parallel with a progress line,
checks each size and hash (a mismatch is an error and the file is discarded) and marks the directory complete.
$BLUEFLOW_MAVEN_REPOSITORY replaces the repository (a mirror with the same layout).

The embedded broker (streams/embedded/broker.py) needs only the `kafka` component; the local stack (devstack/)
uses both. `blueflow embedded fetch` fetches the Kafka jars now (a container image does it at build time).
Maintainers regenerate the lock after changing a version in streams/embedded/maven/*.pom.xml (needs Maven):
  python -m devstack.jars lock     resolve both poms with mvn and rewrite the lock file
  python -m devstack.jars fetch    download and verify every component's jars into the cache now
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TextIO

MAVEN_DIR = Path(__file__).resolve().parent / "maven"
LOCK_FILE = MAVEN_DIR / "jars.lock.json"
REPOSITORY = "https://repo1.maven.org/maven2"
COMPONENTS = {"kafka": "kafka.version", "s3proxy": "s3proxy.version"}  # component -> pom version property
PARALLEL = 8
MARKER = ".complete"


class JarError(RuntimeError):
    """A jar could not be fetched or verified, or the lock is missing or stale; the message says which."""


def cache_dir() -> Path:
    env = os.environ.get("BLUEFLOW_CACHE")
    return Path(env).expanduser().resolve() if env else Path.home() / ".cache" / "blueflow" / "jars"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def pom_digest(pom: Path) -> str:
    """SHA-256 of the pom's content without comments and layout whitespace (what Maven would read)."""
    return hashlib.sha256(ET.canonicalize(from_file=str(pom), with_comments=False, strip_text=True).encode()).hexdigest()


# ---------------------------------------------------------------- the lock

def load_lock(path: Path = LOCK_FILE, maven_dir: Path = MAVEN_DIR) -> dict[str, Any]:
    """The lock, checked against the poms it was made from (a changed pom means a stale lock)."""
    try:
        lock = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise JarError(f"cannot read the jar lock {path}: {exc}") from None
    for name, comp in lock["components"].items():
        pom = maven_dir / comp["pom"]
        if not pom.exists() or pom_digest(pom) != comp["pom_digest"]:
            raise JarError(f"{pom} changed since {path.name} was made; regenerate the lock with "
                           f"`python -m devstack.jars lock` (needs Maven) and commit it")
    return lock


def versions(lock: dict[str, Any] | None = None) -> dict[str, str]:
    lock = lock or load_lock()
    return {name: comp["version"] for name, comp in lock["components"].items()}


def jar_name(entry: dict[str, Any]) -> str:
    return entry["path"].rsplit("/", 1)[-1]


def stamp(name: str, comp: dict[str, Any]) -> str:
    """The marker text of a complete cache directory: changes whenever the component's locked jars do."""
    digest = hashlib.sha256(json.dumps(comp["jars"], sort_keys=True).encode()).hexdigest()[:16]
    return f"{name} {comp['version']} lock:{digest}\n"


def mismatch(entry: dict[str, Any], size: int, sha256: str) -> str | None:
    """Why a file is not the locked jar (None if it is)."""
    if size != entry["size"]:
        return f"{size} bytes, the lock says {entry['size']}"
    if sha256 != entry["sha256"]:
        return f"SHA-256 {sha256}, the lock says {entry['sha256']}"
    return None


# ---------------------------------------------------------------- progress

def progress_line(files: int, total_files: int, done: int, total: int, elapsed: float) -> str:
    mb = 1024 * 1024
    return (f"  jars: {files}/{total_files} files, {done / mb:.1f}/{total / mb:.1f} MB"
            f" ({done / mb / max(elapsed, 0.001):.1f} MB/s)")


class Progress:
    """One progress line: rewritten in place on a terminal, else a log line every `every` seconds."""

    def __init__(self, total_files: int, total_bytes: int, log: Callable[[str], None],
                 stream: TextIO | None = None, every: float = 5.0):
        self.total_files, self.total_bytes, self.log, self.every = total_files, total_bytes, log, every
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.files = self.bytes = 0
        self.t0 = self.shown = time.monotonic()
        self._lock = threading.Lock()

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        with self._lock:
            self.bytes += nbytes
            self.files += files
            now = time.monotonic()
            if self.tty and now - self.shown >= 0.2:
                self.stream.write("\r" + self.line() + "\033[K")
                self.stream.flush()
                self.shown = now
            elif not self.tty and now - self.shown >= self.every:
                self.log(self.line())
                self.shown = now

    def line(self) -> str:
        return progress_line(self.files, self.total_files, self.bytes, self.total_bytes, time.monotonic() - self.t0)

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\033[K\n")
            self.stream.flush()


# ---------------------------------------------------------------- fetching

def _download(entry: dict[str, Any], dest: Path, repository: str, progress: Progress) -> None:
    """Download one jar into `dest`, verified against its lock entry; a bad file is discarded."""
    url = f"{repository.rstrip('/')}/{entry['path']}"
    part = dest.with_name(dest.name + ".part")
    for attempt in (1, 2):  # one retry for a network failure, none for a wrong file
        h, size = hashlib.sha256(), 0
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(part, "wb") as f:
                while chunk := r.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
                    progress.add(len(chunk))
            break
        except (OSError, http.client.HTTPException) as exc:
            progress.add(-size)
            part.unlink(missing_ok=True)
            if attempt == 2:
                raise JarError(f"could not download {entry['coordinates']} from {url}: {exc}") from None
    why = mismatch(entry, size, h.hexdigest())
    if why:
        part.unlink(missing_ok=True)
        raise JarError(f"{entry['coordinates']} from {url} is not the locked jar ({why}); the download was "
                       f"discarded. A mirror or proxy may be serving another file; if the lock is wrong, "
                       f"regenerate it with `python -m devstack.jars lock`")
    part.rename(dest)
    progress.add(files=1)


def _plan(name: str, comp: dict[str, Any], target: Path) -> tuple[Path | None, list[dict[str, Any]]]:
    """(staging dir or None if `target` already holds exactly the locked jars, the jars to download).
    Jars already in `target` that verify are hard-linked into the staging directory, not downloaded again."""
    present = {p.name for p in target.glob("*")} if target.is_dir() else set()
    good = {jar_name(e) for e in comp["jars"]
            if jar_name(e) in present and not mismatch(e, (target / jar_name(e)).stat().st_size,
                                                        sha256_file(target / jar_name(e)))}
    wanted = {jar_name(e) for e in comp["jars"]}
    if good == wanted and present - {MARKER} == wanted:
        (target / MARKER).write_text(stamp(name, comp))  # e.g. a cache Maven filled: adopt it
        return None, []
    staging = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for jar in good:
        try:
            os.link(target / jar, staging / jar)
        except OSError:
            shutil.copy2(target / jar, staging / jar)
    return staging, [e for e in comp["jars"] if jar_name(e) not in good]


def _install(staging: Path, target: Path, marker_text: str) -> None:
    """Replace `target` by the complete `staging` directory (unless another process just installed the same)."""
    with contextlib.suppress(OSError):
        if (target / MARKER).read_text() == marker_text:
            shutil.rmtree(staging, ignore_errors=True)
            return
    old = target.parent / f".{target.name}.{os.getpid()}.old"
    if target.exists():
        target.rename(old)
    try:
        staging.rename(target)
    except OSError:  # another process installed it first; theirs is as good
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def ensure(log: Callable[[str], None] = print, repository: str | None = None,
           lock: dict[str, Any] | None = None, components: tuple[str, ...] | None = None) -> dict[str, Path]:
    """{component: directory holding exactly its locked jars}, downloading what is missing (only `components`
    when given)."""
    lock = lock or load_lock()
    repository = repository or os.environ.get("BLUEFLOW_MAVEN_REPOSITORY") or lock.get("repository") or REPOSITORY
    comps = {n: c for n, c in lock["components"].items() if components is None or n in components}
    dirs = {n: cache_dir() / f"{n}-{c['version']}" for n, c in comps.items()}
    jobs: list[tuple[dict[str, Any], Path]] = []
    staged: dict[str, Path] = {}
    for n, comp in comps.items():
        marker = dirs[n] / MARKER
        if marker.exists() and marker.read_text() == stamp(n, comp):
            continue
        dirs[n].parent.mkdir(parents=True, exist_ok=True)
        staging, missing = _plan(n, comp, dirs[n])
        if staging is not None:
            staged[n] = staging
            jobs += [(e, staging / jar_name(e)) for e in missing]
    if not staged:
        return dirs
    total = sum(e["size"] for e, _ in jobs)
    what = ", ".join(f"{n} {comps[n]['version']}" for n in staged)
    log(f"fetching {what}: {len(jobs)} jars, {total / 1024 / 1024:.1f} MB from {repository} (first run only) ...")
    progress = Progress(len(jobs), total, log)
    ex = ThreadPoolExecutor(PARALLEL)
    try:
        try:
            futures = [ex.submit(_download, e, dest, repository, progress) for e, dest in jobs]
            errors = [str(f.exception()) for f in futures if f.exception() is not None]
        finally:  # on Ctrl-C: no new downloads; the running ones end before their files are removed
            ex.shutdown(wait=True, cancel_futures=True)
        progress.finish()
        if errors:
            raise JarError(f"{len(errors)} of {len(jobs)} jars failed:\n" + "\n".join(errors))
    except BaseException:
        for staging in staged.values():
            shutil.rmtree(staging, ignore_errors=True)
        raise
    for n, staging in staged.items():
        (staging / MARKER).write_text(stamp(n, comps[n]))
        _install(staging, dirs[n], stamp(n, comps[n]))
    log(f"  {what}: {len(jobs)} jars verified in {time.monotonic() - progress.t0:.1f}s -> {cache_dir()}")
    return dirs
