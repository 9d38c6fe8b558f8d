"""One stage↔topic table (streams/formats/stage_topics.py): the topology wires it, replay reads it, and every
topic it names has its schema."""
from schemas import SCHEMA_DIR
from streams.formats.stage_topics import CONSUMES, REPLAYABLE, STAGES, TOPIC_NAMES
from streams.ops import replay
from streams.stages import topology


def test_the_topology_wires_the_table():
    assert [(a.name, a.source, a.sinks) for a in topology.AGENTS] == [
        ("parse", "objects", ("flows", "deadletter")),
        ("enrich", "flows", ("kflow", "deadletter")),
        ("sink", "kflow", ("progress", "ledger", "deadletter"))]
    assert {a.name: a.source for a in topology.agents("ipfix")} == CONSUMES == {"parse": "objects", "enrich": "flows",
                                                                                "sink": "kflow"}


def test_replay_reads_the_table():
    assert REPLAYABLE == ("enrich", "sink")
    assert replay.STAGES == {"enrich": ("flows", "flow_batch"), "sink": ("kflow", "kflow_batch")}


def test_every_topic_named_is_known_and_every_schema_exists():
    for stage in STAGES.values():
        assert {stage.reads, *stage.writes} <= set(TOPIC_NAMES)
        assert (SCHEMA_DIR / f"{stage.schema}.avsc").is_file()
    assert "  enrich   flows -> kflow, deadletter" in topology.describe().splitlines()
