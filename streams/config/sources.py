"""Sources: the buckets (and the accounts and Kentik destinations behind them) one deployment serves.

A source is one COS bucket with its endpoint, credentials and prefix, the VPC regions and API key that label its
flows, and where its flows go — the Kentik user, plan and export, or (sink `ipfix`) the IPFIX collectors — plus
keep_objects / dry_run. The flags and environment describe a one-entry list, its source named `default`; a
configuration file (streams/config/config_file.py) can list several. `Settings.resolve` makes the list either way
(`Settings.sources`), and what a source lacks is worded for where it came from (`Source.missing`). Records carry the
source's name, and every stage looks its source up in its context (streams/stages/context.py `Sources`). The clients
of a source are made by streams/stages/runtime.py; what its failures do is decided in streams/stages/retry.py (its
failure state: streams/stages/failures.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from streams.config.values import METADATA_OFF, regions_for

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
    metadata_off: bool = False  # no VPC metadata (--regions none, or a file's source without regions): ids only
    from_flags: bool = field(default=False, compare=False)  # the flags' and environment's source (`default`)

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
        """What this source cannot run without, in operator words: the flag or variable to set for the flags'
        source, the fields it lacks for a configuration file's."""
        kentik = self.sink != "ipfix" and not self.dry_run
        lacking = [need for need, lacks in (
            ("bucket", not self.bucket), ("endpoint", not self.endpoint),
            ("credentials", not self.uses_hmac and not (self.cos_api_key and self.service_instance)),
            ("kentik_token", kentik and not self.kentik_token), ("kentik_email", kentik and not self.kentik_email),
            ("plan_id", kentik and self.plan_id <= 0),
            ("regions", self.endpoint and not self.regions and not self.metadata_off),
            ("vpc_api_key", self.regions and not self.vpc_api_key)) if lacks]
        words = [NEEDS[need][self.from_flags].format(endpoint=self.endpoint, regions=",".join(self.regions))
                 for need in lacking]
        if self.from_flags or not words:
            return words
        return [f"source {self.name} needs " + ", ".join(words)]

    def about(self, problem: str) -> str:
        """`problem` of this source as an operator reads it: named after the source unless it is the flags'."""
        return problem if self.from_flags else f"source {self.name}: {problem}"


# What a source lacks: (the words for a configuration file's source, the sentence naming the flag or variable
# to set for the flags' source)
NEEDS = {
    "bucket": ("a bucket", "--bucket_name (or BLUEFLOW_BUCKET) is required"),
    "endpoint": ("a COS endpoint", "--service_endpoint (or BLUEFLOW_COS_ENDPOINT) is required"),
    "credentials": ("COS credentials (an IAM API key and service instance, or an HMAC pair)",
                    "COS credentials: set IBM_COS_API_KEY and IBM_SERVICE_INSTANCE, or the HMAC pair "
                    "BLUEFLOW_COS_HMAC_ACCESS_KEY / BLUEFLOW_COS_HMAC_SECRET_KEY"),
    "kentik_token": ("a Kentik API token", "KENTIK_API_TOKEN is required"),
    "kentik_email": ("a Kentik user e-mail", "--api_email (or KENTIK_API_EMAIL) is required"),
    "plan_id": ("a Kentik plan id (plan_id > 0)",
                "--plan_id (or KENTIK_PLAN_ID) must be your Kentik plan id (> 0): devices are created in it"),
    "regions": ("regions (its COS endpoint {endpoint!r} names none; or regions: none)",
                "--regions is required: the COS endpoint {endpoint!r} names no region (e.g. --regions us-east; "
                "--regions none labels flows with ids only, without VPC metadata)"),
    "vpc_api_key": ("a VPC API key for the metadata of {regions} (or regions: none)",
                    "IBM_VPC_API_KEY is required for the VPC metadata of {regions} (or --regions none: flows "
                    "labelled with ids only)"),
}


def implicit_source(settings) -> Source:
    """The one source the flags and environment describe (every v1 command line)."""
    return Source(name=DEFAULT, bucket=settings.bucket_name, endpoint=settings.service_endpoint,
                  prefix=settings.cos_prefix, cos_api_key=settings.ibm_cos_api_key,
                  service_instance=settings.ibm_service_instance, hmac_access_key=settings.cos_hmac_access_key,
                  hmac_secret_key=settings.cos_hmac_secret_key, regions=tuple(settings.region_list),
                  vpc_api_key=settings.ibm_vpc_api_key, kentik_email=settings.api_email,
                  kentik_token=settings.kentik_api_token, plan_id=settings.plan_id, export_id=settings.export_id,
                  keep_objects=settings.keep_objects, dry_run=settings.dry_run, sink=settings.sink,
                  ipfix_collectors=settings.ipfix_collectors,
                  metadata_off=settings.regions.strip().lower() == METADATA_OFF, from_flags=True)


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
        updates["regions"] = tuple(regions_for("", source.endpoint or settings.service_endpoint))
    if [r.lower() for r in (source.regions or ())] == ["none"]:
        updates["regions"] = ()
    updates["metadata_off"] = not updates.get("regions", source.regions)  # no regions: ids only, no VPC API key
    if not source.uses_hmac and not source.cos_api_key and not source.hmac_access_key:
        for name in ("cos_api_key", "service_instance", "hmac_access_key", "hmac_secret_key"):
            updates[name] = getattr(base, name)
    # the global switches apply to every source; a source can add them for itself
    updates["keep_objects"] = source.keep_objects or settings.keep_objects
    updates["dry_run"] = source.dry_run or settings.dry_run
    return replace(source, **updates)
