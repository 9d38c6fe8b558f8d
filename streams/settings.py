"""Worker configuration: one table of options, read from flags or the environment.

Every option has a flag (Blueflow's own names where Blueflow had one) and an environment variable.
`blueflow worker` turns flags into environment variables, and the Faust app reads the environment, so
`faust -A streams.app worker` and `blueflow worker --bucket_name=...` configure the same thing.
Secrets are marked: they are never printed, logged or exposed by `/service/info`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Mapping


@dataclass(frozen=True)
class Option:
    """One configuration option: flag name, env var, default, meaning."""

    name: str
    env: str
    default: str
    help: str
    secret: bool = False
    kind: str = "str"  # str | int | float | bool


OPTIONS: tuple[Option, ...] = (
    # --- Blueflow-compatible flags and env vars -------------------------------------------------------
    Option("bucket_name", "BLUEFLOW_BUCKET", "", "COS bucket that receives the flow logs."),
    Option("service_endpoint", "BLUEFLOW_COS_ENDPOINT", "",
           "COS endpoint, e.g. s3.direct.us-east.cloud-object-storage.appdomain.cloud (https:// is added "
           "when no scheme is given)."),
    Option("api_email", "KENTIK_API_EMAIL", "", "E-mail of the Kentik user whose API token is used."),
    Option("plan_id", "KENTIK_PLAN_ID", "0", "Kentik plan id the per-subnet devices are created in.", kind="int"),
    Option("export_id", "KENTIK_EXPORT_ID", "0", "Kentik cloud export id (devices and status heartbeats).",
           kind="int"),
    Option("regions", "BLUEFLOW_REGIONS", "us-south",
           "Comma-separated IBM regions whose VPC metadata labels the flows."),
    Option("log_level", "BLUEFLOW_LOG_LEVEL", "info", "debug, info, warning or error."),
    Option("ibm_vpc_api_key", "IBM_VPC_API_KEY", "", "IBM Cloud API key for the VPC API.", secret=True),
    Option("kentik_api_token", "KENTIK_API_TOKEN", "", "Kentik API token.", secret=True),
    Option("ibm_cos_api_key", "IBM_COS_API_KEY", "", "COS service credential API key (IAM auth).", secret=True),
    Option("ibm_service_instance", "IBM_SERVICE_INSTANCE", "", "COS service instance id (IAM auth)."),
    # --- our own --------------------------------------------------------------------------------------
    Option("cos_hmac_access_key", "BLUEFLOW_COS_HMAC_ACCESS_KEY", "",
           "COS HMAC access key id; with the secret, used instead of the IAM API key."),
    Option("cos_hmac_secret_key", "BLUEFLOW_COS_HMAC_SECRET_KEY", "", "COS HMAC secret access key.",
           secret=True),
    Option("cos_prefix", "BLUEFLOW_COS_PREFIX", "",
           "Only keys under this prefix are listed (empty = whole bucket)."),
    Option("iam_url", "BLUEFLOW_IAM_URL", "https://iam.cloud.ibm.com", "IBM IAM base URL."),
    Option("vpc_url_template", "BLUEFLOW_VPC_URL_TEMPLATE", "https://{region}.iaas.cloud.ibm.com/v1",
           "VPC API URL per region ({region} is replaced)."),
    Option("kentik_api_root", "BLUEFLOW_KENTIK_API_ROOT", "https://api.kentik.com/api/internal",
           "Kentik device API root."),
    Option("kentik_flow_url", "BLUEFLOW_KENTIK_FLOW_URL", "https://flow.kentik.com/chf",
           "Kentik flow-ingest URL (EU: https://flow.kentik.eu/chf)."),
    Option("kafka_bootstrap", "BLUEFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092",
           "Kafka bootstrap servers (Event Streams: the kafka_brokers_sasl list, comma-separated)."),
    Option("kafka_security_protocol", "BLUEFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT",
           "PLAINTEXT or SASL_SSL (IBM Event Streams)."),
    Option("kafka_sasl_username", "BLUEFLOW_KAFKA_SASL_USERNAME", "token", "SASL PLAIN user (Event Streams: token)."),
    Option("kafka_sasl_password", "BLUEFLOW_KAFKA_SASL_PASSWORD", "",
           "SASL PLAIN password (Event Streams: the service API key).", secret=True),
    Option("topic_prefix", "BLUEFLOW_TOPIC_PREFIX", "blueflow.", "Prefix of every topic name."),
    Option("partitions", "BLUEFLOW_PARTITIONS", "8", "Partitions of the data topics (the unit of scaling).",
           kind="int"),
    Option("replication", "BLUEFLOW_REPLICATION", "1",
           "Replication factor of the topics blueflow creates (Event Streams: 3).", kind="int"),
    Option("app_id", "BLUEFLOW_APP_ID", "blueflow", "Consumer group / Faust app id."),
    Option("http_port", "BLUEFLOW_HTTP_PORT", "8083", "Port of /service/info, /healthz and /metrics.", kind="int"),
    Option("poll_interval", "BLUEFLOW_POLL_INTERVAL", "30", "Seconds between bucket listings.", kind="float"),
    Option("metadata_interval", "BLUEFLOW_METADATA_INTERVAL", "600", "Seconds between VPC metadata refreshes.",
           kind="float"),
    Option("heartbeat_interval", "BLUEFLOW_HEARTBEAT_INTERVAL", "60",
           "Seconds between Kentik export status heartbeats.", kind="float"),
    Option("stuck_after", "BLUEFLOW_STUCK_AFTER", "1800",
           "Seconds after which an object still in the bucket is published again.", kind="float"),
    Option("dedup_window", "BLUEFLOW_DEDUP_WINDOW", "604800",
           "Seconds an object's outcome is remembered to skip it when seen again (keep ≥ the objects topic's "
           "retention).", kind="float"),
    Option("chunk_flows", "BLUEFLOW_CHUNK_FLOWS", "2000", "Flows per message on the flows and kflow topics.",
           kind="int"),
    Option("group_objects", "BLUEFLOW_GROUP_OBJECTS", "50",
           "Objects per message on the objects topic (fewer when their flows exceed chunk_flows).", kind="int"),
    Option("keep_objects", "BLUEFLOW_KEEP_OBJECTS", "false",
           "Forward flows but never delete objects (backfill, audit).", kind="bool"),
    Option("dry_run", "BLUEFLOW_DRY_RUN", "false", "List and parse only: nothing is sent or deleted.", kind="bool"),
    Option("unhealthy_after", "BLUEFLOW_UNHEALTHY_AFTER", "300",
           "Seconds without progress while work is pending before /healthz fails.", kind="float"),
)

BLUEFLOW_FLAG_NAMES = ("bucket_name", "service_endpoint", "api_email", "plan_id", "export_id", "regions", "log_level")

_TRUE = {"1", "true", "yes", "on"}


def _convert(option: Option, raw: str):
    if option.kind == "int":
        return int(raw or 0)
    if option.kind == "float":
        return float(raw or 0)
    if option.kind == "bool":
        return raw.strip().lower() in _TRUE
    return raw


@dataclass(frozen=True)
class Settings:
    """The worker's configuration, typed. Build it with `Settings.from_env()`."""

    bucket_name: str
    service_endpoint: str
    api_email: str
    plan_id: int
    export_id: int
    regions: str
    log_level: str
    ibm_vpc_api_key: str
    kentik_api_token: str
    ibm_cos_api_key: str
    ibm_service_instance: str
    cos_hmac_access_key: str
    cos_hmac_secret_key: str
    cos_prefix: str
    iam_url: str
    vpc_url_template: str
    kentik_api_root: str
    kentik_flow_url: str
    kafka_bootstrap: str
    kafka_security_protocol: str
    kafka_sasl_username: str
    kafka_sasl_password: str
    topic_prefix: str
    partitions: int
    replication: int
    app_id: str
    http_port: int
    poll_interval: float
    metadata_interval: float
    heartbeat_interval: float
    stuck_after: float
    dedup_window: float
    chunk_flows: int
    group_objects: int
    keep_objects: bool
    dry_run: bool
    unhealthy_after: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        values = {o.name: _convert(o, env.get(o.env, o.default)) for o in OPTIONS}
        return cls(**values)

    @property
    def region_list(self) -> list[str]:
        return [r.strip() for r in self.regions.split(",") if r.strip()]

    @property
    def cos_endpoint_url(self) -> str:
        endpoint = self.service_endpoint.strip()
        if endpoint and "://" not in endpoint:
            endpoint = "https://" + endpoint
        return endpoint

    @property
    def iam_token_url(self) -> str:
        return self.iam_url.rstrip("/") + "/identity/token"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def public_view(self) -> dict:
        """Every option with secrets replaced by whether they are set: safe to show anywhere."""
        secret = {o.name for o in OPTIONS if o.secret}
        view = {}
        for f in fields(self):
            value = getattr(self, f.name)
            view[f.name] = ("(set)" if value else "(unset)") if f.name in secret else value
        return view

    def secret_values(self) -> list[str]:
        """The secret values in use, for scrubbing text before it is logged."""
        return [getattr(self, o.name) for o in OPTIONS if o.secret and getattr(self, o.name)]


def missing_for_worker(settings: Settings) -> list[str]:
    """What a worker cannot run without, in words an operator understands."""
    problems = []
    if not settings.bucket_name:
        problems.append("--bucket_name (or BLUEFLOW_BUCKET) is required")
    if not settings.service_endpoint:
        problems.append("--service_endpoint (or BLUEFLOW_COS_ENDPOINT) is required")
    has_hmac = settings.cos_hmac_access_key and settings.cos_hmac_secret_key
    if not has_hmac and not (settings.ibm_cos_api_key and settings.ibm_service_instance):
        problems.append("COS credentials: set IBM_COS_API_KEY and IBM_SERVICE_INSTANCE, or the HMAC pair "
                        "BLUEFLOW_COS_HMAC_ACCESS_KEY / BLUEFLOW_COS_HMAC_SECRET_KEY")
    if not settings.dry_run:
        if not settings.kentik_api_token:
            problems.append("KENTIK_API_TOKEN is required")
        if not settings.api_email:
            problems.append("--api_email (or KENTIK_API_EMAIL) is required")
    return problems
