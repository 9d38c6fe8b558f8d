"""Which topic each stage reads (and in which schema) and which it writes: data only, so that the topology
(streams/stages/topology.py, which wires it), health, the web endpoints, status and replay read one table.

Topic names are suffixes: a deployment's topic is `settings.topic(name)` (its --topic_prefix first).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageTopics:
    reads: str  # the topic the stage consumes
    schema: str  # of the messages it reads (schemas/<schema>.avsc)
    writes: tuple[str, ...]


STAGES = {  # in pipeline order
    "parse": StageTopics("objects", "object_ref", ("flows", "deadletter")),
    "enrich": StageTopics("flows", "flow_batch", ("kflow", "deadletter")),
    "sink": StageTopics("kflow", "kflow_batch", ("progress", "ledger", "deadletter")),
}
CONSUMES = {stage: topics.reads for stage, topics in STAGES.items()}  # stage -> the topic it consumes
REPLAYABLE = ("enrich", "sink")  # `blueflow replay`: the stages whose input can be sent through them again
TOPIC_NAMES = ("objects", "flows", "kflow", "vpc-metadata", "deadletter", "ledger", "progress")
