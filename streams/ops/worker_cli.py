"""`blueflow worker`: settings from flags, environment and the configuration file, Kafka checked
and the topics ensured, then the Faust app of `streams.app.build(settings)` run by a worker whose stop is
bounded and whose Kafka reconnect chatter is throttled to one line per window.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import click

from streams.config.option_table import ALL_OPTIONS, OPTIONS
from streams.ops.options import SwitchesCommand, Unavailable, click_option, require_kafka, settings_for
from streams.config.settings import Settings, missing_for_worker
from streams.stages.stopping import ask_stop, stop_asked, stop_status

STOP_GRACE_S = 15.0
log = logging.getLogger("blueflow")


_embedded = None  # the worker's embedded Kafka (streams/embedded/supervisor.py), when it runs one


def _leave(code: int) -> None:
    """Stop the embedded Kafka (if any: cleanly, bounded), then leave the process with `code`; 1 when the
    embedded Kafka died for good, whatever the pipeline said."""
    if _embedded is not None:
        logging.getLogger("blueflow.kafka").setLevel(logging.CRITICAL)  # clients still open see it go: no news
        _embedded.stop()
        code = 1 if _embedded.failed else code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_after(grace_s: float) -> None:
    """Leave the process `grace_s` seconds from now, whatever is still running (a daemon timer)."""
    def leave() -> None:
        log.warning("worker did not stop within %.0fs of the signal; exiting now "
                    "(unfinished work is not committed and will be redone)", grace_s)
        _leave(0)

    timer = threading.Timer(grace_s, leave)
    timer.daemon = True
    timer.start()


def _graceful_worker_class():
    import faust

    from streams.observe import logthrottle

    class GracefulWorker(faust.Worker):
        """A Faust worker whose stop on SIGTERM/SIGINT is bounded: Kubernetes and tests can rely on it."""

        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            logthrottle.install(logger)

        def _on_sigterm(self) -> None:
            ask_stop("SIGTERM")
            _exit_after(STOP_GRACE_S)
            super()._on_sigterm()

        def _on_sigint(self) -> None:
            ask_stop("SIGINT")
            _exit_after(STOP_GRACE_S)
            super()._on_sigint()

        def _install_signal_handlers_unix(self) -> None:
            super()._install_signal_handlers_unix()
            from streams.observe import taskdump

            self.loop.remove_signal_handler(signal.SIGUSR1)  # mode's dump prints locals (secrets) to stderr
            taskdump.install(self.loop)  # kill -USR1: every task's and thread's stack in the log

    return GracefulWorker


def checked_topic_plan(settings: Settings):
    """The topic plan and profile (streams/ops/kafka_check.py); a plan the profile or the partition budget refuses
    is a UsageError (one line, exit 2) before Kafka is asked."""
    from streams.ops.kafka_check import PlanRefused, checked_plan

    try:
        return checked_plan(settings)
    except PlanRefused as exc:
        raise click.UsageError(str(exc)) from None


def ensure_topics_for(settings: Settings, conf: dict):
    """Create the missing topics of the checked plan, Faust's leader topic included (quietly: a failure is an
    exception, not a log flood)."""
    from connectors.kafka_admin import deployment_specs, ensure_topics
    from streams.ops.kafka_check import QUIET

    plan, _ = checked_topic_plan(settings)
    try:
        return ensure_topics(dict(conf, **QUIET), prefix=settings.topic_prefix, partitions=settings.partitions,
                             specs=deployment_specs(settings.app_id), replication_factor=plan[0].replication)
    except Exception as exc:  # noqa: BLE001 - KafkaException or RuntimeError from a refused creation
        raise Unavailable(f"could not create the topics on Kafka at {settings.kafka_bootstrap}: {exc}; "
                          "check that the credential may create topics, or create them as "
                          "`blueflow topics ensure --dry-run` prints") from None


MALLOC_ARENAS = 1  # glibc: one malloc arena for all threads (its default is 8 per core)
# glibc: blocks from 4 MiB are mmap'd (freed at once), and a heap's free top is kept up to 32 MiB
MALLOC_MMAP_THRESHOLD = 4 << 20
MALLOC_TRIM_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # mallopt's parameters (malloc.h)


def tune_malloc(arenas: int = MALLOC_ARENAS, mmap_threshold: int = MALLOC_MMAP_THRESHOLD,
                        trim_threshold: int = MALLOC_TRIM_THRESHOLD) -> bool:
    """Tune glibc's malloc before any thread starts — librdkafka's (the topic check) and the embedded Kafka's
    included: an arena made before the limit stays — as MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_ and
    MALLOC_TRIM_THRESHOLD_ would; the environment's own settings win.
    - One arena: each thread allocating big buffers (downloads, numpy columns, Kafka batches) otherwise gets an
      arena of its own that keeps its freed memory — W2 x1 peak RSS 265-267 MB (2 arenas, set too late to
      hold) -> 218.6 with MALLOC_ARENA_MAX=1, CPU within the run-to-run noise (issue 26, PROFILE.md section 9).
    - A fixed mmap threshold of 4 MiB: glibc's own rises with every big block freed (up to 32 MiB), after
      which big buffers come from the arenas' heaps and their freed space stays — W2 x1 peak RSS 267 -> 234 MB,
      CPU 26.7 -> 26.4 us/flow (issue 26). Fixing it also fixes the trim threshold at 128 KiB unless set:
      trimming a heap's top that often cost ~35 % more CPU in page faults (an earlier trial), hence 32 MiB.
    False where there is no glibc (musl, macOS) or the environment chose all three."""
    import ctypes
    import ctypes.util
    import os

    wanted = [(name, param, value) for name, param, value in (
        ("MALLOC_ARENA_MAX", _M_ARENA_MAX, arenas), ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, mmap_threshold),
        ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, trim_threshold)) if not os.environ.get(name)]
    if not wanted:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return all([bool(libc.mallopt(param, value)) for _, param, value in wanted])
    except (OSError, AttributeError):
        return False


GC_YOUNG_THRESHOLD = 10_000  # allocations between two collections of the youngest generation (CPython: 700)


def tune_gc(young: int = GC_YOUNG_THRESHOLD) -> tuple[int, int, int]:
    """Make the cyclic garbage collector cheaper for the hot path, once the app is built; its thresholds after.
    - The objects alive after start-up (modules, classes, the app) move to the permanent generation
      (`gc.freeze`): no collection traverses them again.
    - A young collection every 10,000 container allocations instead of 700: every batch allocates tens of
      thousands of short-lived lists, structs and tuples, that reference counting frees anyway; each young
      collection traverses them all. W2 stage functions in process: ~0.9 us/flow in the collector -> 0.02
      (issue 26). The older generations keep their thresholds, relative to the young one's collections."""
    import gc

    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
    return gc.get_threshold()


def run_worker(settings: Settings, handler: logging.Handler) -> int:
    """Run the Faust worker until it stops; the exit status. `handler` (streams/observe/logs.py) is the only log
    handler: every record of every logger passes its scrubber and escaping."""
    from streams.observe import logs
    from streams.app import build

    GracefulWorker = _graceful_worker_class()
    app = build(settings)
    tune_gc()
    app.conf.loghandlers = [handler]  # Faust/mode reset the root logger: it gets our handler back
    worker = GracefulWorker(app, loglevel=settings.log_level.lower(), quiet=settings.log_format == "json",
                            logging_config=logs.faust_logging_config(settings.log_level))
    worker.spinner = None  # a terminal nicety that also turns the root logger to DEBUG; never in a service
    try:
        worker.execute_from_commandline()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # a crash reason re-raised after shutdown: say it, then leave all the same
        log.exception("worker stopped after a failure")
        code = 1
    code, line = stop_status(stop_asked(), code)
    if line:
        log.critical("%s", line)
    return code


def _run(**values) -> None:
    tune_malloc()  # before any thread
    settings = settings_for(values, ALL_OPTIONS)
    problems = missing_for_worker(settings)
    if problems:
        raise click.UsageError("cannot start the worker: " + "; ".join(problems))
    checked_topic_plan(settings)  # refused before Kafka is asked
    from streams.observe import logs

    try:  # every record of every logger passes the scrubber from here on
        handler = logs.configure(settings.log_level, settings.log_format, settings.secret_values())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    settings = _with_embedded_kafka(settings)
    try:
        conf = require_kafka(settings)
        for name, problem in ensure_topics_for(settings, conf).mismatched.items():
            click.echo(f"warning: topic {name} {problem}; scaling is limited by the smaller count", err=True)
    except click.ClickException:
        if _embedded is not None:
            _embedded.stop()
        raise
    code = run_worker(settings, handler)
    # Faust has stopped and flushed its producer. A thread of ours may still be blocked in a COS or Kentik
    # call whose result nobody awaits any more; leave without joining it (what it did is at-least-once).
    _leave(code)


def _with_embedded_kafka(settings: Settings) -> Settings:
    """Settings pointing at this worker's embedded Kafka, started now, when no Kafka bootstrap is configured
    (streams/embedded/); the settings unchanged otherwise."""
    global _embedded
    from dataclasses import replace

    from streams.embedded import broker, locate, supervisor

    if not locate.is_embedded(settings.kafka_bootstrap):
        return settings
    conflict = locate.protocol_conflict(settings.kafka_bootstrap, settings.kafka_security_protocol)
    if conflict:
        raise click.UsageError(conflict)
    data_dir = locate.data_dir_of(settings.data_dir)
    try:
        _embedded, took = supervisor.start(data_dir, log.info)
    except (locate.DataDirError, supervisor.SetupError) as exc:
        raise click.UsageError(str(exc)) from None
    except broker.BrokerError as exc:
        raise Unavailable(f"the embedded Kafka did not start: {exc}") from None
    _embedded.on_give_up = lambda: os.kill(os.getpid(), signal.SIGTERM)  # stop the worker; _leave makes it 1
    log.info("Kafka: embedded single-node Apache Kafka %s at %s (started in %.1fs; data in %s, heap %d MB): "
             "for one VM. For HA or more machines set --kafka_bootstrap / BLUEFLOW_KAFKA_BOOTSTRAP to a cluster "
             "(drain first: README \"Embedded Kafka\")", _embedded.version, _embedded.bootstrap, took, data_dir,
             broker.HEAP_MB)
    return replace(settings, kafka_bootstrap=_embedded.bootstrap)


def worker_command() -> click.Command:
    params = [click_option(o) for o in OPTIONS if not o.secret]  # secrets: environment only (ps shows flags)
    secrets = ", ".join(f"{o.env} ({o.help.rstrip('.')})" for o in OPTIONS if o.secret)
    return SwitchesCommand(
        "worker", params=params, callback=_run,
        help="Run a pipeline worker (run several to scale; one of them leads). Every flag also has an environment "
             "variable; secrets are read from the environment only.",
        epilog=f"Secrets (environment only, never flags): {secrets}. Switches also take =true/false; "
               "flags are accepted with - or _ (--dry-run, --dry_run).")
