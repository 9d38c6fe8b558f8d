"""After a rebalance, partitions with nothing committed are read from their beginning again (issue 16)."""
import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.state import rewind


def test_partitions_without_a_committed_offset_are_the_ones_to_rewind():
    a, b, c, d = (TopicPartition("flows", p) for p in range(4))
    assert rewind.uncommitted({a: None, b: 0, c: 17, d: -1001}) == [a, b, d]


def test_installed_seek_to_committed_rewinds_only_uncommitted_partitions(monkeypatch):
    calls = []
    p2, p3 = TopicPartition("flows", 2), TopicPartition("flows", 3)

    async def original(self, *partitions):
        calls.append(("seek_to_committed", partitions))
        return {p2: 40, p3: None}  # p3: its first messages were dropped on revoke, nothing committed

    async def seek_to_beginning(self, *partitions):
        calls.append(("seek_to_beginning", partitions))

    monkeypatch.setattr(AIOKafkaConsumer, "seek_to_committed", original)
    monkeypatch.setattr(AIOKafkaConsumer, "seek_to_beginning", seek_to_beginning)
    rewind.install()
    rewind.install()  # idempotent: one wrapper only
    consumer = object.__new__(AIOKafkaConsumer)
    result = asyncio.run(AIOKafkaConsumer.seek_to_committed(consumer))
    assert result == {p2: 40, p3: None}  # Faust still gets the committed offsets it asked for
    assert calls == [("seek_to_committed", ()), ("seek_to_beginning", (p3,))]
