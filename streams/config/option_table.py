"""The option table: every configuration option of blueflow, declared once (flag, environment variable,
default, meaning, type and bounds), and the groups of options each kind of command reads.

streams/config/settings.py resolves and checks values against it; streams/ops/options.py turns it into typed Click
options; streams/config/config_file.py reads the same names from the YAML file. Secrets are marked: they come only
from the environment and are never printed, logged or exposed by `/service/info`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    """One configuration option: flag name, env var, default, meaning, and how a value is checked."""

    name: str
    env: str
    default: str
    help: str
    secret: bool = False
    kind: str = "str"  # str | int | float | bool | choice
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # smallest accepted number (int/float)
    maximum: float | None = None
    aliases: tuple[tuple[str, str], ...] = ()  # (other word, the choice it means), e.g. ("warn", "warning")


LOG_LEVELS = ("debug", "info", "warning", "error")
KAFKA_PROTOCOLS = ("PLAINTEXT", "SASL_SSL", "SASL_PLAINTEXT", "SSL")

OPTIONS: tuple[Option, ...] = (
    # --- Blueflow-compatible flags and env vars -------------------------------------------------------
    Option("bucket_name", "BLUEFLOW_BUCKET", "", "COS bucket that receives the flow logs."),
    Option("service_endpoint", "BLUEFLOW_COS_ENDPOINT", "",
           "COS endpoint, e.g. s3.direct.us-east.cloud-object-storage.appdomain.cloud (https:// is added "
           "when no scheme is given)."),
    Option("api_email", "KENTIK_API_EMAIL", "", "E-mail of the Kentik user whose API token is used."),
    Option("plan_id", "KENTIK_PLAN_ID", "0", "Kentik plan id the per-subnet devices are created in.", kind="int",
           minimum=0),
    Option("export_id", "KENTIK_EXPORT_ID", "0",
           "Kentik IBM cloud export id (devices tied to it, status heartbeats); 0 = none: devices by plan only, "
           "no heartbeat.",
           kind="int", minimum=0),
    Option("regions", "BLUEFLOW_REGIONS", "",
           "Comma-separated IBM regions whose VPC metadata labels the flows (empty: the region of the COS "
           "endpoint, s3.direct.us-east… → us-east; none: no VPC metadata, flows carry the ids of their keys)."),
    Option("log_level", "BLUEFLOW_LOG_LEVEL", "info", "How much the worker logs.", kind="choice",
           choices=LOG_LEVELS, aliases=(("warn", "warning"), ("err", "error"))),
    Option("log_format", "BLUEFLOW_LOG_FORMAT", "text", "text (a line per record; a traceback adds its own lines) or json (one object per line).",
           kind="choice", choices=("text", "json")),
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
    Option("kafka_bootstrap", "BLUEFLOW_KAFKA_BOOTSTRAP", "embedded",
           "Kafka bootstrap servers (Event Streams: the kafka_brokers_sasl list, comma-separated); embedded: the "
           "worker runs a single-node Kafka on 127.0.0.1 with its data in --data_dir."),
    Option("kafka_security_protocol", "BLUEFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT",
           "PLAINTEXT, or SASL_SSL for IBM Event Streams.", kind="choice",
           choices=KAFKA_PROTOCOLS),
    Option("kafka_sasl_username", "BLUEFLOW_KAFKA_SASL_USERNAME", "token", "SASL PLAIN user (Event Streams: token)."),
    Option("kafka_sasl_password", "BLUEFLOW_KAFKA_SASL_PASSWORD", "",
           "SASL PLAIN password (Event Streams: the service API key).", secret=True),
    Option("kafka_ssl_ca", "BLUEFLOW_KAFKA_SSL_CA", "",
           "PEM file of the CA that signed the brokers' TLS certificates (empty: the system's trusted CAs, as "
           "Event Streams needs)."),
    Option("kafka_profile", "BLUEFLOW_KAFKA_PROFILE", "auto",
           "event-streams (only the topic settings IBM Event Streams accepts, within its Standard plan's ranges), "
           "kafka (any Apache Kafka), or auto: event-streams when a bootstrap host is …eventstreams.cloud.ibm.com.",
           kind="choice", choices=("auto", "event-streams", "kafka")),
    Option("topic_prefix", "BLUEFLOW_TOPIC_PREFIX", "blueflow.", "Prefix of every topic name."),
    Option("partitions", "BLUEFLOW_PARTITIONS", "6",
           "Partitions of each work topic (objects, flows, kflow: the unit of scaling); control topics have one.",
           kind="int", minimum=1),
    Option("partition_budget", "BLUEFLOW_PARTITION_BUDGET", "24",
           "Most partitions the deployment's topics may take together, Faust's leader topic included (0: no "
           "limit); a larger plan is refused. Event Streams Standard: 100 per instance, shared by its deployments.",
           kind="int", minimum=0),
    Option("replication", "BLUEFLOW_REPLICATION", "1",
           "Replication factor of the topics blueflow creates (Event Streams: 3).", kind="int",
           minimum=1),
    Option("app_id", "BLUEFLOW_APP_ID", "blueflow", "Consumer group / Faust app id."),
    Option("http_port", "BLUEFLOW_HTTP_PORT", "8083", "Port of /service/info, /healthz and /metrics.", kind="int",
           minimum=1, maximum=65535),
    Option("http_host", "BLUEFLOW_HTTP_HOST", "0.0.0.0",
           "Address the HTTP port binds (0.0.0.0: every interface, as a pod needs; 127.0.0.1 on a shared VM)."),
    Option("http_faust_pages", "BLUEFLOW_HTTP_FAUST_PAGES", "false",
           "Also serve Faust's own /router/ and /table/ pages (off: only blueflow's pages).", kind="bool"),
    Option("poll_interval", "BLUEFLOW_POLL_INTERVAL", "30", "Seconds between bucket listings.", kind="float",
           minimum=0.1),
    Option("metadata_interval", "BLUEFLOW_METADATA_INTERVAL", "600", "Seconds between VPC metadata refreshes.",
           kind="float", minimum=1),
    Option("heartbeat_interval", "BLUEFLOW_HEARTBEAT_INTERVAL", "60",
           "Seconds between Kentik export status heartbeats.", kind="float", minimum=1),
    Option("stuck_after", "BLUEFLOW_STUCK_AFTER", "1800",
           "Seconds after which an object still in the bucket is published again.", kind="float",
           minimum=1),
    Option("dedup_window", "BLUEFLOW_DEDUP_WINDOW", "604800",
           "Seconds an object's outcome is remembered to skip it when seen again (keep ≥ the objects topic's "
           "retention).", kind="float", minimum=0),
    Option("chunk_flows", "BLUEFLOW_CHUNK_FLOWS", "2000", "Flows per message on the flows and kflow topics.",
           kind="int", minimum=1),
    Option("max_object_bytes", "BLUEFLOW_MAX_OBJECT_BYTES", "1073741824",
           "Largest decompressed object accepted (bytes, 0 = no limit); larger ones are dead-lettered. Objects "
           "are decoded as they stream; until one is known good its flows are held compressed (about 6 % of its "
           "JSON size).", kind="int", minimum=0),
    Option("stream_buffer", "BLUEFLOW_STREAM_BUFFER", "64",
           "Messages a worker reads ahead per topic (Faust's stream buffer; its default of 4,096 messages of up to "
           "1 MB each does not bound memory).", kind="int", minimum=1),
    Option("group_objects", "BLUEFLOW_GROUP_OBJECTS", "50",
           "Objects per message on the objects topic (fewer when their flows exceed chunk_flows).", kind="int",
           minimum=1),
    Option("delete_batch_seconds", "BLUEFLOW_DELETE_BATCH_SECONDS", "1",
           "Seconds completed objects wait to be deleted together (one version check and DeleteObjects for up "
           "to 1,000 keys); 0: each kflow message deletes its own. The messages that completed them are "
           "acked only once they are deleted, so a worker killed meanwhile leaves them to be redelivered.",
           kind="float", minimum=0, maximum=30),
    Option("fetch_concurrency", "BLUEFLOW_FETCH_CONCURRENCY", "4",
           "Objects of one group downloaded and parsed at once (COS GETs in flight per worker).", kind="int",
           minimum=1, maximum=32),
    Option("keep_objects", "BLUEFLOW_KEEP_OBJECTS", "false",
           "Forward flows but never delete objects (backfill, audit).", kind="bool"),
    Option("dry_run", "BLUEFLOW_DRY_RUN", "false", "List and parse only: nothing is sent or deleted.", kind="bool"),
    Option("unhealthy_after", "BLUEFLOW_UNHEALTHY_AFTER", "300",
           "Seconds without progress while work is pending before /healthz fails.", kind="float",
           minimum=1),
    # --- sink choice (docs/ipfix.md) --------------------------------------------------------------------
    Option("sink", "BLUEFLOW_SINK", "kentik", "Where flows go: kentik (Kentik /chf) or ipfix (IPFIX collectors).",
           kind="choice", choices=("kentik", "ipfix")),
    Option("ipfix_collectors", "BLUEFLOW_IPFIX_COLLECTORS", "", "IPFIX collectors, host:port[,host:port...]."),
    Option("ipfix_transport", "BLUEFLOW_IPFIX_TRANSPORT", "udp", "IPFIX transport: udp or tcp.",
           kind="choice", choices=("udp", "tcp")),
    Option("ipfix_domain", "BLUEFLOW_IPFIX_DOMAIN", "subnet",
           "IPFIX observation domain: subnet (one per IBM subnet, from its id) or a fixed number."),
    Option("ipfix_rate", "BLUEFLOW_IPFIX_RATE", "20000",
           "IPFIX records per second from each worker to each collector over UDP (the pace; 0 = unpaced). "
           "About 5.6 MB/s at 20000; more collectors, workers or TCP give more (docs/ipfix.md).", kind="int",
           minimum=0),
    Option("ipfix_kentik_device", "BLUEFLOW_IPFIX_KENTIK_DEVICE", "",
           "COMPANY_ID:DEVICE_ID of a Kentik device: every IPFIX record then carries them in observationPointId "
           "(IE 138) as ktranslate does, for Kentik's kproxy (docs/ipfix.md)."),
    Option("kentik_device_type", "BLUEFLOW_KENTIK_DEVICE_TYPE", "host-nprobe-dns-www",
           "device_type of the Kentik devices blueflow creates."),
    Option("kentik_device_subtype", "BLUEFLOW_KENTIK_DEVICE_SUBTYPE", "ibm_subnet",
           "device_subtype of the Kentik devices blueflow creates (ibm_subnet carries the 19 custom columns)."),
    # --- many sources, one deployment (streams/config/config_file.py, streams/config/sources.py) ---------------------
    Option("config", "BLUEFLOW_CONFIG", "",
           "YAML configuration file: settings plus `sources:` (buckets, accounts, Kentik destinations)."),
    Option("source_budget", "BLUEFLOW_SOURCE_BUDGET", "1000",
           "With several sources: most objects of one source published and not yet finished at a time, so a "
           "backlog in one source cannot starve the others.", kind="int", minimum=1),
    # --- embedded Kafka (streams/embedded/) ----------------------------------------------------------------
    Option("data_dir", "BLUEFLOW_DATA_DIR", "",
           "Data directory of the embedded Kafka (no --kafka_bootstrap given); default: the per-user state "
           "directory ~/.local/state/blueflow; the container image: /var/lib/blueflow (mount a volume)."),
)

BLUEFLOW_FLAG_NAMES = ("bucket_name", "service_endpoint", "api_email", "plan_id", "export_id", "regions", "log_level")

BY_NAME = {o.name: o for o in OPTIONS}

# Options each kind of command reads; a command validates only these (a bad value elsewhere is not its concern).
KAFKA_OPTIONS = ("kafka_bootstrap", "kafka_security_protocol", "kafka_sasl_username", "kafka_sasl_password",
                 "kafka_ssl_ca", "topic_prefix")
KAFKA_OPTIONS += ("data_dir",)  # where the operator commands find a running worker's embedded Kafka
TOPIC_OPTIONS = KAFKA_OPTIONS + ("partitions", "replication", "kafka_profile", "partition_budget", "app_id", "config")
COS_OPTIONS = ("bucket_name", "service_endpoint", "cos_prefix", "ibm_cos_api_key", "ibm_service_instance",
               "cos_hmac_access_key", "cos_hmac_secret_key", "iam_url")
OPS_OPTIONS = KAFKA_OPTIONS + COS_OPTIONS + ("app_id", "config")
ALL_OPTIONS = tuple(o.name for o in OPTIONS)
