"""The producer's partitioner places every key exactly where Kafka's default partitioner (aiokafka's, the
Java client's murmur2) does: compacted topics (ledger, progress) must keep a key on one partition whichever
client wrote it."""
from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from streams.formats.partitioner import KeyPartitioner, murmur2


def keys() -> list[bytes]:
    rng = random.Random(11)
    out = [rng.randbytes(n) for n in range(0, 70)] + [rng.randbytes(rng.randrange(0, 600)) for _ in range(2000)]
    out += [b"", b"a", b"ab", b"abc", b"abcd", "default:ibm/flowlogs/ü€/00000123.gz".encode()]
    return out


def test_murmur2_equals_kafkas():
    for key in keys():
        assert murmur2(key) == aiokafka_murmur2(key), key


@pytest.mark.parametrize("partitions", [1, 3, 4, 12])
def test_a_key_goes_to_the_partition_kafkas_default_partitioner_chooses(partitions):
    ours, theirs = KeyPartitioner(), DefaultPartitioner()
    everything = list(range(partitions))
    for key in keys():
        assert ours(key, everything, everything) == theirs(key, everything, everything)


def test_no_key_goes_to_an_available_partition():
    ours = KeyPartitioner()
    assert {ours(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert ours(None, [0, 1], []) in (0, 1)


def test_a_key_met_again_keeps_its_partition_past_the_cache_bound():
    ours, theirs = KeyPartitioner(), DefaultPartitioner()
    ours.KEYS_CACHED = 5
    keys = [f"source/key-{i}".encode() for i in range(12)] * 3  # each key three times, the cache emptied twice
    assert [ours(k, list(range(6)), list(range(6))) for k in keys] == [theirs(k, list(range(6)), list(range(6)))
                                                                     for k in keys]
    assert len(ours._hashes) <= 5
