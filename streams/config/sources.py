"""Sources: the buckets (and the accounts and Kentik destinations behind them) one deployment serves.

A source is one COS bucket with its endpoint, credentials and prefix, the VPC regions and API key that label
its flows, and where its flows go — the Kentik user, plan and export, or (sink `ipfix`) the IPFIX collectors —
plus keep_objects / dry_run. The flags and
environment describe a one-entry list, its source named `default`; a configuration file
(streams/config/config_file.py) can list several. Records carry the source's name, and every stage looks its
source up in its context (streams/stages/context.py `Sources`). The clients of a source are made by streams/stages/runtime.py; what its failures do is
decided in streams/stages/retry.py (its failure state: streams/stages/failures.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

DEFAULT = "default"
SECRET_FIELDS = ("cos_api_key", "hmac_secret_key", "vpc_api_key", "kentik_token")


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
