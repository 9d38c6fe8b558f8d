"""Batched sends (connectors/kafka_batch.py): each record goes to the partition the producer's partitioner gives
its key, in the order given, a full batch is sent and a new one started, and the call returns only once every
batch was acknowledged."""
from __future__ import annotations

import asyncio

from connectors.kafka_batch import by_partition, send_batched
from streams.formats.partitioner import KeyPartitioner


class _Batch:
    def __init__(self, room: int):
        self.records, self.room = [], room

    def append(self, *, key, value, timestamp):
        if len(self.records) >= self.room:
            return None
        self.records.append((key, value))
        return object()


class _Cluster:
    def partitions_for_topic(self, topic):
        return {0, 1, 2}

    available_partitions_for_topic = partitions_for_topic


class _Producer:
    def __init__(self, room: int):
        self.room, self.sent, self.acked = room, [], 0
        self.client = type("Client", (), {"cluster": _Cluster()})()
        self._partitioner = KeyPartitioner()

        async def wait_on_metadata(topic):
            return None
        self.client._wait_on_metadata = wait_on_metadata

    def create_batch(self):
        return _Batch(self.room)

    async def send_batch(self, batch, topic, *, partition):
        self.sent.append((topic, partition, batch.records))
        future = asyncio.get_running_loop().create_future()

        def ack():
            self.acked += 1
            future.set_result(None)
        asyncio.get_running_loop().call_later(0.01, ack)
        return future


def test_records_go_to_their_key_s_partition_in_order_in_batches_that_fit():
    records = [(f"obj-{i}".encode(), None if i % 5 == 0 else b"v%d" % i) for i in range(40)]
    producer = _Producer(room=4)
    asyncio.run(send_batched(producer, "t", records))
    assert producer.acked == len(producer.sent)  # every batch acknowledged before returning
    partitioner = KeyPartitioner()
    want = by_partition(records, lambda key: partitioner(key, [0, 1, 2], [0, 1, 2]))
    assert len(want) > 1
    got: dict = {}
    for topic, partition, batch in producer.sent:
        assert topic == "t" and 0 < len(batch) <= 4
        got.setdefault(partition, []).extend(batch)
    assert got == want
