"""Several records to one topic as one record batch per partition, straight on the aiokafka producer under
Faust: what finalize and the sink send per object (ledger records, progress records and their tombstones)
costs one `append` each instead of a Faust `Topic.send` each (its futures, callbacks and sensors, ~0.1 ms).

The records land where `Topic.send` would put them — the producer's own partitioner (streams/partitioner.py,
Kafka's murmur2 of the key) — in the order given within each partition, and `send_batched` returns only once
the broker acknowledged every batch (acks=all, as every send of the pipeline).

Pure: `by_partition`. Shell: `aiokafka_producer`, `send_batched`.
"""
from __future__ import annotations

from typing import Any, Callable


def by_partition(records: list[tuple[bytes, bytes | None]], partition_of: Callable[[bytes], int]) -> dict:
    """{partition: its records in the order given}."""
    out: dict[int, list] = {}
    for key, value in records:
        out.setdefault(partition_of(key), []).append((key, value))
    return out


def aiokafka_producer(app: Any) -> Any:
    """The started aiokafka producer under a Faust app's producer, or None (not started, or not aiokafka)."""
    import aiokafka

    producer = getattr(getattr(app, "producer", None), "_producer", None)
    return producer if isinstance(producer, aiokafka.AIOKafkaProducer) else None


async def send_batched(producer: Any, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    """Send `records` ((key, value or None for a tombstone)) to `topic` in as few batches as fit, and wait
    until the broker has all of them."""
    await producer.client._wait_on_metadata(topic)  # noqa: SLF001 - as producer.send does before partitioning
    cluster = producer.client.cluster
    partitions = sorted(cluster.partitions_for_topic(topic))
    available = sorted(cluster.available_partitions_for_topic(topic))
    partitioner = producer._partitioner  # noqa: SLF001 - the producer's own (KeyPartitioner)
    futures = []
    for partition, items in by_partition(records, lambda key: partitioner(key, partitions, available)).items():
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, go on in a new one
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record of {len(value or b'')} bytes does not fit a batch of topic {topic}")
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    for future in futures:
        await future
