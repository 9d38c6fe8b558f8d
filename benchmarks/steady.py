"""W3, steady state: objects are written at a constant rate while the workers run (poll interval 5 s), and
each object's latency is measured from its write to Kentik's acceptance of its last flow and to its deletion.

Burst workloads (W1, W2) measure queueing; this one measures latency. The writer is a process of its own
(forked after the objects were generated, so it only PUTs), paced by a schedule (object i at t0 + i / rate)
with a few PUTs in flight; it reports its CPU and how far it fell behind its schedule, so a writer that
cannot keep up is seen, not mistaken for a slow pipeline.

Clocks (one machine, one wall clock): an object's write time is when its PUT was sent (S3 sets LastModified
when it receives the request, so this is at most one PUT's duration earlier: latencies are, if anything,
over-stated); acceptance is the Kentik stand-in's `received_at` of the object's last record; deletion is the
`delivered_at` of the object's ledger record with `deleted` true, which the worker writes right after the
DeleteObjects that removed it returned (finalize: delete, then ledger).
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from benchmarks import measure
from benchmarks.probes import (delete_run_topics, kafka_run_bytes, proc_cpu_s, stack_cpu_s, standin_check,
                               worker_metrics)
from benchmarks.sinks import accepted_flows, reset_kentik

POLL_INTERVAL_S = 5.0
WRITER_THREADS = 4


def write_paced(env: dict, bucket: str, objects: list, rate: float, conn) -> None:
    """Writer process: PUT object i at t0 + i / rate (a few in flight); send back per key the time its PUT
    was sent, failures, the lag behind the schedule and this process's CPU seconds."""
    from devstack.stack.bucket import hmac_client
    from devstack.synth.writer import _put

    client = hmac_client(env)
    sent: dict[str, float] = {}
    failed: list[str] = []
    lags: list[float] = []

    def put(obj) -> None:
        sent[obj.key] = time.time()
        try:
            _put(client, bucket, obj)
        except Exception as exc:  # noqa: BLE001 - reported, never raised in the writer
            failed.append(f"{obj.key}: {type(exc).__name__}: {exc}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="w3-put") as pool:
        for i, obj in enumerate(objects):
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            lags.append(max(0.0, time.monotonic() - due))
            pool.submit(put, obj)
    took = time.monotonic() - t0
    cpu = os.times()
    conn.send({"sent": sent, "failed": failed, "seconds": took, "cpu_s": cpu.user + cpu.system,
               "lag_p99_s": measure.percentile(lags, 99), "lag_max_s": max(lags, default=0.0)})
    conn.close()


def deletion_times(env: dict, run_id: str) -> dict[str, float]:
    """key -> time (s) its ledger record says it was deleted, from the run's `ledger` topic."""
    from confluent_kafka import Consumer, TopicPartition

    from streams.formats.records import LedgerEntry

    topic = f"{run_id}.ledger"
    consumer = Consumer({"bootstrap.servers": env["BLUEFLOW_KAFKA_BOOTSTRAP"], "group.id": f"{run_id}-w3-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    out: dict[str, float] = {}
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        left = {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + 120
        while left and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            if msg.offset() + 1 >= ends[msg.partition()]:
                left.discard(msg.partition())
            if msg.value() is None:
                continue
            entry = LedgerEntry.decode(msg.value())
            if entry.deleted:
                out[entry.key] = entry.delivered_at / 1000.0
    finally:
        consumer.close()
    return out


def latency_summary(values: list[float], target_s: float | None = None) -> dict:
    out = {"objects": len(values), "p50_s": measure.rnd(measure.percentile(values, 50), 2),
           "p99_s": measure.rnd(measure.percentile(values, 99), 2), "max_s": measure.rnd(max(values, default=None)
                                                                                          if values else None, 2)}
    if target_s is not None:
        out.update(target_p99_s=target_s, ok=out["p99_s"] is not None and out["p99_s"] <= target_s)
    return out


def _drain(workers: list, n_obj: int, timeout_s: float) -> bool:
    """Wait until the workers deleted `n_obj` objects (True) or `timeout_s` passed; /service/info once a second."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        deleted = 0
        for w in workers:
            if not w.alive:
                raise RuntimeError(f"worker {w.name} exited:\n{w.log_tail(30)}")
            info = w.info(timeout=2.0) or {}
            deleted += int((info.get("counts") or {}).get("objects_deleted", 0))
        if deleted >= n_obj:
            return True
        time.sleep(1.0)
    return False


def _ready(workers: list, timeout_s: float = 120.0) -> None:
    """Wait until every worker answers /service/info and one of them leads (polls the bucket)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        infos = [w.info(timeout=2.0) for w in workers]
        if all(infos) and any(i.get("leader") for i in infos):
            return
        time.sleep(1.0)
    raise RuntimeError(f"workers did not come up with a leader within {timeout_s:.0f}s")


def run_steady(env: dict, objects: list, n_workers: int, *, rate: float, timeout_s: float) -> dict:
    """One W3 run: workers up first, then the paced writer; measured until every object is deleted."""
    from devstack.stack import env as stack_env
    from devstack.stack.bucket import empty_bucket, hmac_client
    from devstack.referee import compare
    from devstack.workers import WorkerProcess, run_environment

    bucket = env["BLUEFLOW_BUCKET"]
    empty_bucket(hmac_client(env), bucket)
    reset_kentik(env)
    run_id = f"benchw3w{n_workers}{uuid.uuid4().hex[:6]}"
    worker_env = run_environment(env, run_id, BLUEFLOW_POLL_INTERVAL=str(POLL_INTERVAL_S))
    workers = [WorkerProcess(f"w{i}", worker_env, stack_env.state_dir() / "logs" / run_id)
               for i in range(n_workers)]
    for w in workers:
        w.start()
    try:
        _ready(workers)
        cpu_before = [proc_cpu_s(w.proc.pid) or 0.0 for w in workers]
        stack_before = stack_cpu_s()
        ctx = multiprocessing.get_context("fork")
        receive, send = ctx.Pipe(duplex=False)
        writer = ctx.Process(target=write_paced, args=(env, bucket, objects, rate, send), name="w3-writer")
        t0 = time.monotonic()
        writer.start()
        written = receive.recv()
        writer.join(30)
        drained = _drain(workers, len(objects) - len(written["failed"]), timeout_s)
        wall = time.monotonic() - t0
        cpu = [(proc_cpu_s(w.proc.pid) or 0.0) - b for w, b in zip(workers, cpu_before)]
        samples = measure.merge_samples(worker_metrics(w.port) for w in workers)
        stack_after = stack_cpu_s()
    finally:
        threads = [threading.Thread(target=w.stop, args=(20.0,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    deleted_at = deletion_times(env, run_id)
    kafka = kafka_run_bytes(stack_env.state_dir() / "kafka-data", run_id)
    verdict = compare(objects, accepted_flows(env))
    reset_kentik(env)
    delete_run_topics(env, list(kafka))
    sent = written["sent"]
    stack_cpu = {k: round(v - stack_before.get(k, 0.0), 2) for k, v in stack_after.items()}
    return {"run_id": run_id, "wall_s": wall, "drained": drained, "cpu_s": sum(cpu), "stack_cpu_s": stack_cpu,
            "writer": {k: (measure.rnd(v, 3) if isinstance(v, float) else v) for k, v in written.items()
                       if k != "sent"},
            "accept": [verdict.last_accept_by_object[k] - sent[k] for k in verdict.last_accept_by_object if k in sent],
            "delete": [deleted_at[k] - sent[k] for k in deleted_at if k in sent],
            "cos": measure.cos_requests(samples, POLL_INTERVAL_S),
            "kentik_requests": measure.metric_sum(samples, "blueflow_kentik_requests_total"),
            "referee": {"owed": verdict.owed, "accepted": verdict.accepted, "lost": verdict.lost,
                        "duplicates": verdict.duplicates, "unexpected": verdict.unexpected}}


def steady_row(raw: dict, *, workers: int, objects: int, flows: int, rate: float, seconds: float, **common) -> dict:
    """The report row of a W3 run (latencies against the target: p99 write→accepted ≤ poll interval + 10 s)."""
    writer = raw["writer"]
    return {"workload": "W3", "sink": "kentik", "workers": workers, "objects": objects, "flows": flows,
            "rate_objects_per_s": rate, "seconds": seconds, "poll_interval_s": POLL_INTERVAL_S,
            "wall_s": measure.rnd(raw["wall_s"], 1), "timed_out": not raw["drained"], "flows_per_s": None,
            "worker_cpu_s": measure.rnd(raw["cpu_s"], 2),
            "worker_cpu_us_per_flow": measure.rnd(measure.safe_div(raw["cpu_s"] * 1e6, flows), 2),
            "write_to_accepted": latency_summary(raw["accept"], POLL_INTERVAL_S + 10.0),
            "write_to_deleted": latency_summary(raw["delete"]),
            "latency_p50_s": measure.rnd(measure.percentile(raw["accept"], 50), 2),
            "latency_p99_s": measure.rnd(measure.percentile(raw["accept"], 99), 2),
            "writer": dict(writer, achieved_rate=measure.rnd(measure.safe_div(objects, writer["seconds"]), 2)),
            "cos_requests_per_object": measure.rnd(measure.safe_div(raw["cos"]["at_production_poll"], objects), 3),
            "cos_http_requests": raw["cos"],
            "kentik_requests_per_object": measure.rnd(measure.safe_div(raw["kentik_requests"], objects), 3),
            "stack_cpu_s_during_run": raw["stack_cpu_s"],
            "standin_sanity": standin_check(raw["stack_cpu_s"], raw["cpu_s"]), "referee": raw["referee"],
            "run_id": raw["run_id"], **common}
