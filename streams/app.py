"""The blueflow Faust app: one app, every stage, configured by a Settings object (`build(settings)`).

Run with `blueflow worker ...` or `faust -A streams.app worker` (then `app` is built from the environment).
Topics carry raw bytes; every stage decodes Avro itself so a poison message is dead-lettered instead of
silently skipped by Faust.
"""
from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass

import faust

from streams.stages.runtime import Runtime
from streams.config.settings import Settings

log = logging.getLogger("blueflow")


def _broker_credentials(settings: Settings):
    if settings.kafka_security_protocol.upper() == "SASL_SSL":
        # Without an ssl_context faust silently stays on SASL_PLAINTEXT.
        return faust.SASLCredentials(username=settings.kafka_sasl_username, password=settings.kafka_sasl_password,
                                     ssl_context=ssl.create_default_context(cafile=settings.kafka_ssl_ca or None))
    return None


def make_app(settings: Settings) -> faust.App:
    """A Faust app with our delivery-safe defaults."""
    from streams.formats.partitioner import KeyPartitioner

    brokers = [f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(",") if b.strip()]
    return faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=_broker_credentials(settings),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_compression_type=os.environ.get("BLUEFLOW_KAFKA_COMPRESSION", "zstd") or None,
        producer_max_request_size=1_000_000,
        producer_partitioner=KeyPartitioner(),  # Kafka's murmur2 placement, computed faster
        broker_commit_every=100,
        broker_session_timeout=15.0,
        broker_heartbeat_interval=3.0,
        broker_commit_interval=2.0,
        stream_wait_empty=True,
        stream_buffer_maxsize=settings.stream_buffer,
        web_enabled=True,
        web_bind=settings.http_host,  # the address the port listens on (web_host is only the advertised name)
        web_host=settings.http_host,
        web_port=settings.http_port,
        web_router_enabled=settings.http_faust_pages,  # Faust's /router/ and /table/: off unless asked for
        web_tables_enabled=settings.http_faust_pages,
        web_in_thread=False,
        logging_config=None,
    )


@dataclass(frozen=True)
class Topics:
    """The app's data topics (raw bytes; Avro decoded by the stages)."""

    objects: faust.TopicT
    flows: faust.TopicT
    kflow: faust.TopicT
    vpc_metadata: faust.TopicT
    deadletter: faust.TopicT
    ledger: faust.TopicT
    progress: faust.TopicT


def make_topics(app: faust.App, settings: Settings) -> Topics:
    from connectors.kafka_admin import DEFAULT_TOPIC_SPECS

    counts = {s.name: s.partitions or settings.partitions for s in DEFAULT_TOPIC_SPECS}

    def topic(name: str) -> faust.TopicT:
        return app.topic(settings.topic(name), key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=counts[name], internal=False)

    return Topics(objects=topic("objects"), flows=topic("flows"), kflow=topic("kflow"),
                  vpc_metadata=topic("vpc-metadata"), deadletter=topic("deadletter"), ledger=topic("ledger"),
                  progress=topic("progress"))


def build(settings: Settings) -> faust.App:
    """The app with every stage registered, configured by `settings` (nothing is read from the environment)."""
    runtime = Runtime(settings)
    app = make_app(settings)
    topics = make_topics(app, settings)
    from streams.stages import topology

    topology.build(app, topics, runtime)
    return app


def __getattr__(name: str):
    """`faust -A streams.app worker`: `app` built from the environment on first use, not at import."""
    if name == "app":
        settings = Settings.from_env()
        from streams.embedded.locate import is_embedded

        if is_embedded(settings.kafka_bootstrap):  # only `blueflow worker` runs the embedded Kafka
            raise RuntimeError("`faust -A streams.app worker` needs BLUEFLOW_KAFKA_BOOTSTRAP; without it, run "
                               "`blueflow worker` (it starts an embedded Kafka)")
        app = build(settings)
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
