"""`blueflow check`: the settings, then each dependency tested once, read-only — one result per check.

Per source: a COS listing of its bucket (one page of one key), an IAM token for each API key it uses, a VPC
API call per region (one VPC listed), and its sink — Kentik (the user and token accepted, the plan in the
account's plans where the API lists them) or its IPFIX collectors (resolved; a TCP connection opened and
closed). Then Kafka: connect and authenticate, and the topic plan against the cluster. Nothing is written,
deleted or sent: no object, no device, no heartbeat, no flow. Each result says what was tested and, when it
failed, the fix in operator words.
"""
from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Result:
    check: str  # what was tested, e.g. "cos list (source default, bucket flowlogs)"
    state: str  # ok | failed | skipped
    detail: str  # what was found
    fix: str = ""  # with failed: what to change

    def line(self) -> str:
        fix = f" — fix: {self.fix}" if self.state == FAILED and self.fix else ""
        return f"{self.state.upper() if self.state == FAILED else self.state:<7} {self.check}: {self.detail}{fix}"

    def as_dict(self) -> dict:
        return asdict(self)


def run_one(check: str, test: Callable[[], str], fix: Callable[[Exception], str]) -> Result:
    """`test()` returns what it found (ok), or raises: failed, with the exception's text and `fix(exc)`."""
    try:
        return Result(check, OK, test())
    except Skipped as exc:
        return Result(check, SKIPPED, str(exc))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a line, not a traceback
        return Result(check, FAILED, " ".join(str(exc).split())[:300] or type(exc).__name__, fix(exc))


class Skipped(Exception):
    """The check cannot be made read-only here; the message says why and what tests it later."""


# ------------------------------------------------------------------------------------------ settings
def settings_results(settings) -> list[Result]:
    from streams.config.settings import missing_for_worker

    problems = missing_for_worker(settings)
    if not problems:
        return [Result("settings", OK, f"{len(settings.sources)} source(s), sink {settings.sink}")]
    return [Result("settings", FAILED, problem, "set it (flag, variable or configuration file)")
            for problem in problems]


# ----------------------------------------------------------------------------------------------- COS
def cos_result(source, settings) -> Result:
    from connectors.cos import list_objects
    from streams.stages.runtime import cos_client_for

    def test() -> str:
        client = cos_client_for(source, settings)
        first = next(iter(list_objects(client, source.bucket, source.prefix, page_size=1)), None)
        return "listed: " + ("empty" if first is None else "at least one object") + (
            " (HMAC keys)" if source.uses_hmac else " (IAM API key)")

    def fix(exc: Exception) -> str:
        code = getattr(exc, "code", "")
        if code in ("NoSuchBucket",):
            return f"check the bucket name ({source.bucket}) and that it is in the endpoint's region"
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "401"):
            return ("check the COS credentials (IBM_COS_API_KEY + IBM_SERVICE_INSTANCE, or the HMAC pair) and "
                    "that they have the Writer role on the bucket")
        return f"check --service_endpoint ({source.cos_endpoint_url}) and that this host can reach it"

    return run_one(f"cos list (source {source.name}, bucket {source.bucket})", test, fix)


# ------------------------------------------------------------------------------------------ IAM, VPC
def _authenticator(api_key: str, iam_url: str):
    from ibm_cloud_sdk_core.authenticators import IAMAuthenticator

    auth = IAMAuthenticator(api_key, url=iam_url)
    auth.token_manager.http_config = {"timeout": TIMEOUT_S}
    return auth


def iam_result(what: str, api_key: str, settings) -> Result:
    def test() -> str:
        _authenticator(api_key, settings.iam_url).token_manager.get_token()
        return f"token issued by {settings.iam_url}"

    def fix(exc: Exception) -> str:
        if getattr(exc, "code", None) in (400, 401, 403):
            return f"the {what} is not accepted by IAM: create a new API key and set it"
        return f"check --iam_url ({settings.iam_url}) and that this host can reach it"

    return run_one(f"iam token ({what})", test, fix)


def vpc_result(source_name: str, region: str, api_key: str, settings) -> Result:
    def test() -> str:
        from ibm_vpc import VpcV1

        from connectors.vpc import DEFAULT_VERSION

        service = VpcV1(version=DEFAULT_VERSION, authenticator=_authenticator(api_key, settings.iam_url))
        service.set_service_url(settings.vpc_url_template.replace("{region}", region))
        service.set_http_config({"timeout": TIMEOUT_S})
        service.list_vpcs(limit=1)
        return f"VPC API answered ({settings.vpc_url_template.replace('{region}', region)})"

    def fix(exc: Exception) -> str:
        if getattr(exc, "code", None) in (401, 403):
            return "give the API key's identity Viewer on VPC Infrastructure Services"
        return f"check --regions ({region}) and --vpc_url_template, and that this host can reach the VPC API"

    return run_one(f"vpc api (source {source_name}, region {region})", test, fix)


# -------------------------------------------------------------------------------------------- Kentik
def kentik_results(source, settings) -> list[Result]:
    from streams.stages.runtime import kentik_client_for

    where = f"source {source.name}, {source.kentik_email}"
    if not (source.kentik_token and source.kentik_email):
        return [Result(f"kentik api (user {where})", SKIPPED, "no Kentik user e-mail or API token (see settings)")]
    client = kentik_client_for(source, settings)
    auth = run_one(f"kentik api (user {where})", lambda: _kentik_auth(client),
                   lambda exc: ("check KENTIK_API_TOKEN and --api_email (the token of that user)"
                                if getattr(exc, "status", None) in (401, 403) else
                                f"check --kentik_api_root ({settings.kentik_api_root}) and that this host can "
                                "reach it"))
    if auth.state != OK:
        return [auth]
    plan = run_one(f"kentik plan {source.plan_id} (source {source.name})",
                   lambda: _kentik_plan(client, settings.kentik_api_root, source.plan_id),
                   lambda exc: "check --plan_id: the id in parentheses on Kentik's Licenses page")
    export = Result(f"kentik export {source.export_id} (source {source.name})", SKIPPED,
                    "Kentik's API has no read-only check of an export; the leader's first heartbeat tests it "
                    "(/service/info shows its answer)") if source.export_id else None
    return [r for r in (auth, plan, export) if r is not None]


def _kentik_auth(client) -> str:
    """A device lookup by a name no device has: 404 means the user and token were accepted."""
    found = client.get_device("blueflow-check-no-such-device")
    return "user and token accepted" + (" (a device of that name exists)" if found else "")


def plan_ids(doc) -> set[int]:
    """The plan ids of a `GET {api_root}/plans` answer: {"plans": [{"id": 11467, ...}, ...]}."""
    plans = doc.get("plans") if isinstance(doc, dict) else None
    if not isinstance(plans, list):
        raise ValueError("the plans answer is not {\"plans\": [...]}")
    return {int(p["id"]) for p in plans if isinstance(p, dict) and str(p.get("id", "")).isdigit()}


def _kentik_plan(client, api_root: str, plan_id: int) -> str:
    import json

    if not plan_id:
        raise Skipped("no --plan_id given (devices are created without one)")
    answer = client._api_json("list plans", "GET", f"{api_root.rstrip('/')}/plans")  # noqa: SLF001 - one GET
    if answer.status == 404:
        raise Skipped(f"{api_root} does not list plans (HTTP 404); the first device creation tests the plan")
    if answer.status != 200:
        raise ValueError(f"listing plans answered HTTP {answer.status}")
    ids = plan_ids(json.loads(answer.body))
    if plan_id not in ids:
        raise ValueError(f"plan {plan_id} is not among the account's plans ({', '.join(map(str, sorted(ids)))})")
    return "in the account's plans"


# --------------------------------------------------------------------------------------------- IPFIX
def ipfix_results(source, settings) -> list[Result]:
    from connectors.ipfix_export import parse_collectors

    try:
        collectors = parse_collectors(source.ipfix_collectors)
    except ValueError as exc:
        return [Result(f"ipfix collectors (source {source.name})", FAILED, str(exc), "set --ipfix_collectors")]
    return [run_one(f"ipfix collector {c} (source {source.name}, {settings.ipfix_transport})",
                    lambda c=c: _collector(c.host, c.port, settings.ipfix_transport),
                    lambda exc: "check the collector's address, that it runs, and the firewall")
            for c in collectors]


def _collector(host: str, port: int, transport: str) -> str:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM)
    address = infos[0][4][0]
    if transport != "tcp":
        return f"resolved to {address} (UDP: nothing is sent, so only the name is tested)"
    with socket.create_connection((host, port), timeout=TIMEOUT_S):
        pass  # connected and closed: no IPFIX message sent
    return f"TCP connection to {address}:{port} accepted (closed without sending)"


# --------------------------------------------------------------------------------------------- Kafka
def kafka_results(settings) -> list[Result]:
    from streams.ops.kafka_check import KafkaUnreachable, probe
    from streams.ops.options import kafka_conf

    where = f"kafka {settings.kafka_bootstrap} ({settings.kafka_security_protocol})"
    try:
        conf = kafka_conf(settings)
        probe(conf)
    except KafkaUnreachable as exc:
        text = str(exc)
        detail, _, fix = text.partition("; check ")
        return [Result(where, FAILED, detail, "check " + fix if fix else "")]
    except Exception as exc:  # noqa: BLE001 - UsageError: SASL without password
        return [Result(where, FAILED, str(getattr(exc, "message", exc)), "set BLUEFLOW_KAFKA_SASL_PASSWORD")]
    ok = Result(where, OK, "connected" + (" and authenticated" if "SASL" in settings.kafka_security_protocol else ""))
    return [ok, run_one(f"kafka topics (prefix {settings.topic_prefix})", lambda: _topics(conf, settings),
                        lambda exc: "create the topics with `blueflow topics ensure` (it prints them), or raise "
                                    "the partitions by hand")]


def topic_findings(plan, cluster: dict[str, int]) -> tuple[list[str], list[str]]:
    """(missing topic names, mismatches "name has N partitions, plan wants M") of `plan` against the cluster's
    topics (name -> partition count)."""
    missing = [t.name for t in plan if t.name not in cluster]
    mismatched = [f"{t.name} has {cluster[t.name]} partitions, the plan wants {t.partitions}" for t in plan
                  if t.name in cluster and cluster[t.name] != t.partitions]
    return missing, mismatched


def _topics(conf: dict, settings) -> str:
    from confluent_kafka.admin import AdminClient

    from streams.ops.kafka_check import QUIET, topic_plan

    meta = AdminClient(dict(conf, **QUIET)).list_topics(timeout=TIMEOUT_S)
    cluster = {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}
    plan = topic_plan(settings.topic_prefix, settings.partitions, settings.replication)
    missing, mismatched = topic_findings(plan, cluster)
    if mismatched:
        raise ValueError("; ".join(mismatched))
    if missing:
        return (f"{len(plan) - len(missing)} of {len(plan)} topics exist; the worker creates the others "
                f"({', '.join(missing)}) if its credential may (else: `blueflow topics ensure --dry-run`)")
    return f"all {len(plan)} topics exist with the planned partitions"


# ------------------------------------------------------------------------------------------- the run
def source_results(source, settings) -> Iterable[Result]:
    if not source.uses_hmac and not (source.cos_api_key and source.service_instance):
        yield Result(f"cos list (source {source.name}, bucket {source.bucket})", SKIPPED, "no COS credentials")
    else:
        yield cos_result(source, settings)
    keys = [] if source.uses_hmac else [("COS API key", source.cos_api_key)]
    keys.append(("VPC API key", source.vpc_api_key))
    for what, key in keys:
        if not key:
            continue
        iam = iam_result(f"{what} of source {source.name}", key, settings)
        yield iam
        if what == "VPC API key" and iam.state == OK:
            for region in source.regions:
                yield vpc_result(source.name, region, key, settings)
    if source.sink == "ipfix":
        yield from ipfix_results(source, settings)
    elif not source.dry_run:
        yield from kentik_results(source, settings)


def run_checks(settings) -> list[Result]:
    """Every check, in order: settings, then per source COS, IAM, VPC and its sink, then Kafka."""
    results = settings_results(settings)
    for source in settings.sources:
        results.extend(source_results(source, settings))
    results.extend(kafka_results(settings))
    return results


def summary_line(results: list[Result]) -> str:
    """`7 of 9 checks passed, 1 skipped, 1 failed`."""
    counts = {state: sum(r.state == state for r in results) for state in (OK, SKIPPED, FAILED)}
    extra = "".join(f", {counts[state]} {state}" for state in (SKIPPED, FAILED) if counts[state])
    return f"{counts[OK]} of {len(results)} checks passed{extra}"
