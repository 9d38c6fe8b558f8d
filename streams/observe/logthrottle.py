"""One log line per attempt window for the Kafka clients' reconnect chatter.

When a broker goes away, aiokafka (Faust's consumer and producer) and librdkafka (the followers, through the
`blueflow.kafka` logger) log every reconnect attempt — several lines a second. `ThrottleFilter` lets the first
record of a kind through, drops the repeats for `window_s` seconds and notes how many it dropped on the next
one it lets through. Only the Kafka client loggers are throttled: blueflow's own per-object lines never are.
"""
from __future__ import annotations

import logging
import time

THROTTLED_LOGGERS = ("aiokafka", "blueflow.kafka", "blueflow.follower", "faust.transport")
WINDOW_S = 30.0


def record_kind(record: logging.LogRecord) -> tuple:
    """What makes two records "the same message": logger, level, template (and librdkafka's facility)."""
    facility = record.args[0] if record.name == "blueflow.kafka" and isinstance(record.args, tuple) and \
        record.args else None
    return record.name, record.levelno, str(record.msg), facility


class ThrottleFilter(logging.Filter):
    def __init__(self, window_s: float = WINDOW_S, loggers: tuple[str, ...] = THROTTLED_LOGGERS, clock=time.monotonic):
        super().__init__()
        self.window_s = window_s
        self.loggers = loggers
        self.clock = clock
        self._seen: dict[tuple, list] = {}  # kind -> [window start, suppressed count]

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.loggers):
            return True
        kind = record_kind(record)
        now = self.clock()
        seen = self._seen.get(kind)
        if seen is not None and now - seen[0] < self.window_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} (repeated {seen[1]} times in the last {self.window_s:g}s)"
        self._seen[kind] = [now, 0]
        return True


def install(root: logging.Logger | None = None, window_s: float = WINDOW_S) -> ThrottleFilter:
    """Add one ThrottleFilter to every handler of `root` (the root logger by default)."""
    root = root or logging.getLogger()
    throttle = ThrottleFilter(window_s)
    for handler in root.handlers:
        if not any(isinstance(f, ThrottleFilter) for f in handler.filters):
            handler.addFilter(throttle)
    return throttle


def configure_command_logging() -> None:
    """Logging of a short command (not the worker, which Faust sets up): warnings on stderr, Kafka throttled."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install(root)
