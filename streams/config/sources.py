"""Sources: the buckets (and the accounts and Kentik destinations behind them) one deployment serves.

A source is one COS bucket with its endpoint, credentials and prefix, the VPC regions and API key that label
its flows, and where its flows go — the Kentik user, plan and export, or (sink `ipfix`) the IPFIX collectors —
plus keep_objects / dry_run. The flags and
environment describe one implicit source named `default` (every v1 command line); a configuration file
(streams/config/config_file.py) can list several. Records carry the source's name (`""` for `default`, so state
written before sources existed stays valid), and every stage looks its source up here.

`Sources` is the per-process registry: lazily built COS and Kentik clients per source, and each source's
problems (a source whose COS fails is reported, and its objects wait, while the other sources keep flowing).
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

DEFAULT = "default"
SECRET_FIELDS = ("cos_api_key", "hmac_secret_key", "vpc_api_key", "kentik_token")


class UnknownSource(LookupError):
    """A record names a source this deployment does not (or no longer) serve."""


class SourceUnavailable(Exception):
    """One source's COS kept failing (several sources): the object waits in its bucket, the others flow."""


@dataclass(frozen=True)
class Source:
    name: str
    bucket: str
    endpoint: str = ""
    prefix: str = ""
    cos_api_key: str = field(default="", repr=False)
    service_instance: str = ""
    hmac_access_key: str = ""
    hmac_secret_key: str = field(default="", repr=False)
    regions: tuple[str, ...] = ()
    vpc_api_key: str = field(default="", repr=False)
    kentik_email: str = ""
    kentik_token: str = field(default="", repr=False)
    plan_id: int = 0
    export_id: int = 0
    keep_objects: bool = False
    dry_run: bool = False
    sink: str = ""  # kentik | ipfix; "" = the deployment's --sink
    ipfix_collectors: str = ""  # with sink ipfix: host:port[,...]; "" = the deployment's --ipfix_collectors

    @property
    def record_name(self) -> str:
        """What records carry: "" for the implicit source (so v1 state stays valid), else the name."""
        return "" if self.name == DEFAULT else self.name

    @property
    def cos_endpoint_url(self) -> str:
        endpoint = self.endpoint.strip()
        return "https://" + endpoint if endpoint and "://" not in endpoint else endpoint

    @property
    def uses_hmac(self) -> bool:
        return bool(self.hmac_access_key and self.hmac_secret_key)

    def secret_values(self) -> list[str]:
        return [v for v in (getattr(self, name) for name in SECRET_FIELDS) if v]

    def public_view(self) -> dict:
        view = asdict(self)
        for name in SECRET_FIELDS:
            view[name] = "(set)" if view[name] else "(unset)"
        view["regions"] = list(self.regions)
        return view

    def missing(self) -> list[str]:
        """What this source cannot run without (the checks of `missing_for_worker`, per source)."""
        problems = []
        if not self.bucket:
            problems.append("a bucket")
        if not self.endpoint:
            problems.append("a COS endpoint")
        if not self.uses_hmac and not (self.cos_api_key and self.service_instance):
            problems.append("COS credentials (an IAM API key and service instance, or an HMAC pair)")
        if self.sink != "ipfix" and not self.dry_run:
            if not self.kentik_token:
                problems.append("a Kentik API token")
            if not self.kentik_email:
                problems.append("a Kentik user e-mail")
            if self.sink != "ipfix" and self.plan_id <= 0:
                problems.append("a Kentik plan id (plan_id > 0)")
        if self.regions and not self.vpc_api_key:
            problems.append(f"a VPC API key for the metadata of {','.join(self.regions)} (or regions: none)")
        return problems


def implicit_source(settings) -> Source:
    """The one source the flags and environment describe (every v1 command line)."""
    return Source(name=DEFAULT, bucket=settings.bucket_name, endpoint=settings.service_endpoint,
                  prefix=settings.cos_prefix, cos_api_key=settings.ibm_cos_api_key,
                  service_instance=settings.ibm_service_instance, hmac_access_key=settings.cos_hmac_access_key,
                  hmac_secret_key=settings.cos_hmac_secret_key, regions=tuple(settings.region_list),
                  vpc_api_key=settings.ibm_vpc_api_key, kentik_email=settings.api_email,
                  kentik_token=settings.kentik_api_token, plan_id=settings.plan_id, export_id=settings.export_id,
                  keep_objects=settings.keep_objects, dry_run=settings.dry_run, sink=settings.sink,
                  ipfix_collectors=settings.ipfix_collectors)


def sources_of(settings) -> tuple[Source, ...]:
    """The sources a worker serves: those of the configuration file, else the implicit one."""
    return tuple(settings.sources) or (implicit_source(settings),)


def inherit(source: Source, settings) -> Source:
    """`source` with every unset field taken from the global settings (flags, environment, the file's top
    level): one Kentik user or one endpoint for every source is written once."""
    base = implicit_source(settings)
    updates = {}
    for name in ("endpoint", "kentik_email", "kentik_token", "vpc_api_key", "plan_id", "export_id", "regions", "sink",
                 "ipfix_collectors"):
        if not getattr(source, name):
            updates[name] = getattr(base, name)
    if not source.regions and not settings.regions.strip():  # the region of the source's own COS endpoint
        from streams.config.values import regions_for

        updates["regions"] = tuple(regions_for("", source.endpoint or settings.service_endpoint))
    if [r.lower() for r in (source.regions or ())] == ["none"]:
        updates["regions"] = ()
    if not source.uses_hmac and not source.cos_api_key and not source.hmac_access_key:
        for name in ("cos_api_key", "service_instance", "hmac_access_key", "hmac_secret_key"):
            updates[name] = getattr(base, name)
    # the global switches apply to every source; a source can add them for itself
    updates["keep_objects"] = source.keep_objects or settings.keep_objects
    updates["dry_run"] = source.dry_run or settings.dry_run
    return replace(source, **updates)


# ------------------------------------------------------------------------------------------ registry
# With several sources: once a source's COS (or Kentik credentials) has failed this long, its objects wait...
# It is also how long a failing source can hold a partition it shares with the others (a message of its objects
# retried in place) when its failure begins: 3 s keeps the healthy sources' latency within noise (faults
# `sources` once saw acct-a's p99 at 6.3 s vs 2.1 s with 10 s: an acct-b message retried ahead of its objects).
GIVE_UP_AFTER_S = 3.0
PROBE_EVERY_S = 30.0  # ...and one call per this interval (per worker and operation) checks whether it is back


@dataclass
class SourceState:
    failing: dict = field(default_factory=dict)  # COS operation -> (problem, failing since)
    probed: dict = field(default_factory=dict)  # COS operation -> when a waiting source was last tried
    backlog: int = 0
    oldest_age_s: float = 0.0

    @property
    def problem(self) -> str:
        return "; ".join(problem for problem, _ in list(self.failing.values()))  # written by pool threads


class Sources:
    """The sources of one worker process, their clients (built on first use) and their current problems."""

    def __init__(self, settings, make_cos: Callable[[Source], object] | None = None,
                 make_kentik: Callable[[Source], object] | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.all = sources_of(settings)
        self._by_record = {s.record_name: s for s in self.all}
        self._make_cos = make_cos or (lambda s: make_cos_client_for(s, settings))
        self._make_kentik = make_kentik or (lambda s: make_kentik_client_for(s, settings))
        self._cos: dict[str, object] = {}
        self._kentik: dict[str, object] = {}
        self._lock = threading.Lock()
        self.state = {s.name: SourceState() for s in self.all}
        self.clock = clock

    @property
    def isolated(self) -> bool:
        """More than one source: a source's COS failure must not hold or fail the others."""
        return len(self.all) > 1

    def get(self, record_source: str) -> Source:
        """The source a record names ("" = the implicit one); UnknownSource when none is configured so."""
        found = self._by_record.get(record_source or "")
        if found is None and record_source == DEFAULT:
            found = self._by_record.get("")
        if found is None:
            raise UnknownSource(f"source {record_source or DEFAULT!r} is not configured in this deployment")
        return found

    def cos(self, source: Source):
        with self._lock:
            if source.name not in self._cos:
                self._cos[source.name] = self._make_cos(source)
            return self._cos[source.name]

    def kentik(self, source: Source):
        with self._lock:
            if source.name not in self._kentik:
                self._kentik[source.name] = self._make_kentik(source)
            return self._kentik[source.name]

    # ---------------------------------------------------------------- per-source health
    def failed(self, source: Source, operation: str, problem: str) -> None:
        from streams.observe import source_metrics

        failing = self.state[source.name].failing
        failing[operation] = (problem, failing.get(operation, (problem, self.clock()))[1])
        source_metrics.HEALTHY.labels(source=source.name).set(0)

    def succeeded(self, source: Source, operation: str | None = None) -> None:
        """A COS call of `operation` (None: every operation) of the source succeeded again."""
        from streams.observe import source_metrics

        failing = self.state[source.name].failing
        for name in ([operation] if operation else list(failing)):
            failing.pop(name, None)
        source_metrics.HEALTHY.labels(source=source.name).set(0 if failing else 1)

    def waiting(self, source: Source, operation: str) -> bool:
        """True when a call of `operation` should not even be tried: the source has failed for longer than
        GIVE_UP_AFTER_S and was probed less than PROBE_EVERY_S ago (else this call is the probe)."""
        if self.failing_for(source, operation) < GIVE_UP_AFTER_S:
            return False
        probed = self.state[source.name].probed
        if self.clock() - probed.get(operation, float("-inf")) < PROBE_EVERY_S:
            return True
        probed[operation] = self.clock()
        return False

    def failing_for(self, source: Source, operation: str) -> float:
        """Seconds the source's COS calls of `operation` (get, delete, list) have been failing (0: they work)."""
        found = self.state[source.name].failing.get(operation)
        return self.clock() - found[1] if found else 0.0

    def problems(self) -> dict[str, str]:
        return {name: state.problem for name, state in self.state.items() if state.problem}

    def view(self) -> list[dict]:
        """Per source: name, bucket, problem, backlog (leader), oldest object's age — for /service/info."""
        return [{"source": s.name, "bucket": s.bucket, "problem": self.state[s.name].problem,
                 "backlog": self.state[s.name].backlog,
                 "oldest_object_age_s": round(self.state[s.name].oldest_age_s, 1)} for s in self.all]


def make_cos_client_for(source: Source, settings):
    """A source's COS client. Two attempts per call (not the SDK's five): the pipeline retries on its own,
    and a failing source's probe must cost the shared stage a second or two, not ten."""
    from connectors.cos import make_cos_client
    from streams.observe.metrics import count_cos_request

    if source.uses_hmac:
        return make_cos_client(source.cos_endpoint_url, hmac_access_key=source.hmac_access_key,
                               hmac_secret_key=source.hmac_secret_key, max_attempts=2, on_request=count_cos_request)
    return make_cos_client(source.cos_endpoint_url, api_key=source.cos_api_key, max_attempts=2,
                           service_instance=source.service_instance, iam_token_url=settings.iam_token_url,
                           on_request=count_cos_request)


def make_kentik_client_for(source: Source, settings):
    from connectors.kentik import KentikClient

    return KentikClient(api_root=settings.kentik_api_root, flow_url=settings.kentik_flow_url,
                        email=source.kentik_email, token=source.kentik_token)  # its own deadlines (LIMITS)
