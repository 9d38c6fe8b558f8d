"""Which Kafka the pipeline talks to, and what that Kafka allows: the topic settings IBM Event Streams accepts
at creation, and the partition budget of a deployment. Pure functions, no broker.

Profiles: `event-streams` (IBM Event Streams; chosen automatically when a bootstrap host is an Event Streams
host) and `kafka` (any Apache Kafka). Under `event-streams` a topic plan may carry only the six settings IBM
documents, each within the Standard plan's range (`EVENT_STREAMS_SETTINGS`, from the Event Streams FAQ "How do
I use Kafka APIs to create and delete topics?", https://cloud.ibm.com/docs/EventStreams?topic=EventStreams-faqs).
The plan blueflow makes satisfies that table under both profiles (tests hold it to it, and the local Kafka
enforces it with a create-topic policy: devstack/conf/EventStreamsTopicPolicy.java); the profile decides whether a plan
that does not is refused before Kafka is asked.

Partition budget: every partition of every topic of the deployment, Faust's leader topic included, counts
(Event Streams Standard: 100 partitions per instance, billed per partition-hour; Lite: 1, too few). A plan
over `--partition_budget` is refused with one line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

EVENT_STREAMS, KAFKA, AUTO = "event-streams", "kafka", "auto"

_HOUR_MS = 60 * 60 * 1000
_KIB, _MIB, _GIB = 1024, 1024 ** 2, 1024 ** 3
_ES_HOST = re.compile(r"(^|\.)eventstreams(\.test)?\.cloud\.ibm\.com$", re.I)


@dataclass(frozen=True)
class Allowed:
    """One topic setting Event Streams accepts at creation, with the Standard plan's documented range."""

    name: str
    rule: str  # IBM's words, for the operator
    choices: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    multiple: int | None = None


EVENT_STREAMS_SETTINGS: dict[str, Allowed] = {a.name: a for a in (
    Allowed("cleanup.policy", "delete, compact or delete,compact", choices=("delete", "compact", "delete,compact")),
    Allowed("retention.ms", "Standard: 1 hour to 30 days, in whole hours", low=_HOUR_MS, high=30 * 24 * _HOUR_MS,
            multiple=_HOUR_MS),
    Allowed("retention.bytes", "Standard: 100 KiB to 1 GiB", low=100 * _KIB, high=_GIB),
    Allowed("segment.bytes", "Standard: 100 KiB to 512 MiB", low=100 * _KIB, high=512 * _MIB),
    Allowed("segment.index.bytes", "Standard: 100 KiB to 100 MiB", low=100 * _KIB, high=100 * _MIB),
    Allowed("segment.ms", "5 minutes to 30 days", low=5 * 60 * 1000, high=30 * 24 * _HOUR_MS),
)}


def is_event_streams_host(bootstrap: str) -> bool:
    """Whether any bootstrap server's host is an IBM Event Streams broker (…eventstreams.cloud.ibm.com)."""
    for server in bootstrap.split(","):
        host = server.strip().rsplit(":", 1)[0] if server.strip().count(":") == 1 else server.strip()
        if host and _ES_HOST.search(host):
            return True
    return False


def resolve_profile(profile: str, bootstrap: str) -> str:
    """The profile in force: `auto` is event-streams for an Event Streams bootstrap host, else kafka."""
    if profile in (EVENT_STREAMS, KAFKA):
        return profile
    return EVENT_STREAMS if is_event_streams_host(bootstrap) else KAFKA


def setting_problem(name: str, value: str) -> str | None:
    """Why Event Streams would refuse `name=value` at topic creation (None: it accepts it)."""
    allowed = EVENT_STREAMS_SETTINGS.get(name)
    if allowed is None:
        return f"setting {name!r} is not allowed (Event Streams accepts only {', '.join(EVENT_STREAMS_SETTINGS)})"
    if allowed.choices:
        return None if value in allowed.choices else f"{name}={value}: must be {allowed.rule}"
    try:
        number = int(value)
    except ValueError:
        return f"{name}={value}: not a number"
    if (allowed.low is not None and number < allowed.low) or (allowed.high is not None and number > allowed.high) \
            or (allowed.multiple and number % allowed.multiple):
        return f"{name}={value}: must be {allowed.rule}"
    return None


def topic_problems(topic: str, configs: dict[str, str]) -> list[str]:
    """Every reason Event Streams would refuse to create `topic` with `configs`."""
    return [f"topic {topic}: {p}" for name, value in configs.items() if (p := setting_problem(name, value))]


def budget_problem(total: int, budget: int, partitions: int) -> str | None:
    """One line when the plan's partitions exceed the budget (0: no budget)."""
    if budget <= 0 or total <= budget:
        return None
    return (f"the topic plan needs {total} partitions, over --partition_budget {budget} (BLUEFLOW_PARTITION_BUDGET): "
            f"lower --partitions (now {partitions}; each step costs 3, one per work topic) or raise the budget "
            "(Event Streams Standard: 100 per instance, shared by every deployment on it)")
