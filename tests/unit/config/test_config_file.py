"""The configuration file: every problem reported with its line and what was expected, secrets only by
reference, sources inheriting the global settings, and the v1 flag form unchanged (one implicit source)."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streams.config.config_file import ConfigFileError
from streams.config.settings import Settings, missing_for_worker
from streams.config.sources import implicit_source
from streams.stages.context import Sources

GOOD = """\
kafka_bootstrap: k1:9092,k2:9092
poll_interval: 5
regions: [us-south, us-east]
kentik_api_root: http://kentik.local/api
sources:
  - name: acct-a
    bucket: flowlogs-a
    endpoint: s3.us-south.example
    hmac_access_key: AKID
    hmac_secret_key_env: A_SECRET
    kentik_email: a@example.com
    kentik_token_env: KT_A
    plan_id: 11
    export_id: 22
  - name: acct-b
    bucket: flowlogs-b
    prefix: ibm/flowlogs/
    cos_api_key_file: b.key
    service_instance: inst-b
    regions: [eu-de]
    keep_objects: true
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "blueflow.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def problems(tmp_path: Path, text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigFileError) as caught:
        Settings.resolve({}, {"BLUEFLOW_CONFIG": write(tmp_path, text), **(env or {})})
    return caught.value.problems


def test_a_good_file_gives_global_settings_and_sources_with_secrets_read_by_reference(tmp_path):
    (tmp_path / "b.key").write_text("cos-b-secret\n")
    env = {"BLUEFLOW_CONFIG": write(tmp_path, GOOD), "A_SECRET": "hmac-a-secret", "KT_A": "kentik-a-token",
           "KENTIK_API_TOKEN": "global-token", "KENTIK_API_EMAIL": "ops@example.com",
           "BLUEFLOW_COS_ENDPOINT": "s3.eu-de.example", "KENTIK_PLAN_ID": "7", "BLUEFLOW_POLL_INTERVAL": "9",
           "IBM_VPC_API_KEY": "vpc-global"}
    s = Settings.resolve({}, env)
    assert (s.kafka_bootstrap, s.regions, s.kentik_api_root) == ("k1:9092,k2:9092", "us-south,us-east",
                                                                 "http://kentik.local/api")
    assert s.poll_interval == 9.0  # the environment wins over the file, like a flag over the environment
    a, b = s.sources
    assert (a.name, a.bucket, a.hmac_secret_key, a.kentik_token, a.plan_id, a.export_id) == \
        ("acct-a", "flowlogs-a", "hmac-a-secret", "kentik-a-token", 11, 22)
    assert a.regions == ("us-south", "us-east")  # inherited from the top level
    # acct-b inherits what it does not say: endpoint, Kentik user and plan; its own regions and prefix
    assert (b.endpoint, b.kentik_email, b.kentik_token, b.plan_id, b.export_id) == \
        ("s3.eu-de.example", "ops@example.com", "global-token", 7, 0)
    assert (b.cos_api_key, b.service_instance, b.prefix, b.regions, b.keep_objects) == \
        ("cos-b-secret", "inst-b", "ibm/flowlogs/", ("eu-de",), True)
    assert missing_for_worker(s) == []
    shown = repr(s.public_view()) + repr(s.sources)
    for secret in ("hmac-a-secret", "kentik-a-token", "cos-b-secret", "global-token"):
        assert secret not in shown and secret in s.secret_values()
    assert Sources(s).get("acct-b") is b and len(Sources(s).all) == 2


def test_every_problem_is_reported_with_its_line_and_what_was_expected(tmp_path):
    found = problems(tmp_path, """\
        poll_interval: soon
        kentik_api_token: abc
        colour: red
        sources:
          - name: acct-a
            bucket: a
            cos_api_key: "0123456789abcdefghijklmnopqrstuvwxyzABCD"
            kentik_token_env: "s3cr3t value!"
            plan_id: eleven
            keep_objects: maybe
          - name: Acct A
            bucket: b
          - name: acct-a
            bucket: c
          - bucket: d
            hmac_access_key: AK
            shoe_size: 9
        """)
    expected = [
        ("line 1: poll_interval", "expected a number of seconds"),
        ("line 2: kentik_api_token", "secrets are never written in the configuration file; set KENTIK_API_TOKEN"),
        ("line 3: colour", "unknown setting"),
        ("line 7: sources[0] (acct-a).cos_api_key", "give cos_api_key_env"),
        ("line 8: sources[0] (acct-a).kentik_token_env", "looks like a secret itself"),
        ("line 9: sources[0] (acct-a).plan_id", "expected a whole number, got 'eleven'"),
        ("line 10: sources[0] (acct-a).keep_objects", "expected true or false"),
        ("line 11: sources[1] (Acct A).name", "lower-case letters"),
        ("line 13: sources[2] (acct-a).name", "already the name of the source on line 5"),
        ("line 15: sources[3]", "`name` is required"),
        ("line 17: sources[3].shoe_size", "unknown key"),
        ("line 15: sources[3]", "HMAC credentials need both"),
    ]
    assert len(found) == len(expected), found
    for where, what in expected:
        assert any(p.startswith(where) and what in p for p in found), (where, what, found)


def test_unset_variables_and_unreadable_files_are_named_with_their_lines(tmp_path):
    found = problems(tmp_path, """\
        sources:
          - name: a
            bucket: a
            cos_api_key_env: A_COS_KEY
            service_instance: inst
            kentik_token_file: /nonexistent/kentik-token
        """)
    assert found[0].startswith("line 4: sources[0] (a).cos_api_key_env: environment variable A_COS_KEY is not set")
    assert found[1].startswith("line 6: sources[0] (a).kentik_token_file: /nonexistent/kentik-token cannot be read")


@pytest.mark.parametrize("text, expected", [
    ("sources: [\n  - name: a\n", "line 2: not valid YAML"),
    ("- a\n- b\n", "line 1: expected a mapping of settings"),
    ("sources: {name: a}\n", "line 1: sources: expected a list of sources"),
    ("poll_interval: 3\npoll_interval: 4\n", "line 2: poll_interval: given twice"),
])
def test_files_that_are_not_a_settings_mapping(tmp_path, text, expected):
    [problem] = problems(tmp_path, text)
    assert problem.startswith(expected), problem


def test_the_v1_flag_form_is_one_implicit_source_and_the_same_settings_as_before():
    flags = {"bucket_name": "b", "service_endpoint": "s3.example", "api_email": "a@b.c", "plan_id": 11467,
             "export_id": 3302, "regions": "us-east", "keep_objects": True}
    env = {"KENTIK_API_TOKEN": "kt", "IBM_COS_API_KEY": "ck", "IBM_SERVICE_INSTANCE": "inst"}
    s = Settings.resolve(flags, env)
    assert (s.config, s.sources) == ("", (implicit_source(s),))
    [only] = s.sources
    assert only == implicit_source(s)
    assert (only.name, only.bucket, only.plan_id, only.export_id, only.keep_objects) == \
        ("default", "b", 11467, 3302, True)
    assert (only.cos_api_key, only.service_instance, only.kentik_token, only.regions) == \
        ("ck", "inst", "kt", ("us-east",))
    registry = Sources(s)
    assert registry.all == (only,) and registry.get("") == only == registry.get("default")


def test_a_file_with_only_global_settings_equals_the_same_flags(tmp_path):
    path = write(tmp_path, "bucket_name: b\nplan_id: 5\nregions: [us-south, eu-de]\ndry_run: true\n")
    from_file = Settings.resolve({}, {"BLUEFLOW_CONFIG": path})
    from_flags = Settings.resolve({"bucket_name": "b", "plan_id": 5, "regions": "us-south,eu-de",
                                   "dry_run": True}, {})
    assert dataclasses.replace(from_file, config="") == from_flags


def test_a_command_that_does_not_use_cos_does_not_read_the_sources_secrets(tmp_path):
    path = write(tmp_path, "sources:\n  - name: a\n    bucket: a\n    kentik_token_env: UNSET_VAR\n")
    s = Settings.resolve({}, {"BLUEFLOW_CONFIG": path}, uses=("topic_prefix",))
    assert s.sources == ()


def test_the_worker_stops_with_exit_2_and_one_line_per_problem(tmp_path):
    path = write(tmp_path, "sources:\n  - name: a\n    bucket: a\n    plan_id: x\n")
    env = dict(os.environ, BLUEFLOW_KAFKA_BOOTSTRAP="127.0.0.1:1")
    done = subprocess.run([sys.executable, "-m", "streams.ops.cli", "worker", "--config", path], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("blueflow worker: error: configuration file ") and \
        "line 4: sources[0] (a).plan_id: expected a whole number, got 'x'" in line


def test_the_readme_example_is_a_valid_configuration(tmp_path):
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = readme.split("# blueflow.yaml — three IBM Cloud accounts: two Kentik destinations, one IPFIX "
                         "collector\n")[1].split("```")[0]
    (tmp_path / "kentik-retail").write_text("token\n")
    path = write(tmp_path, block.replace("/run/secrets/kentik-retail", "kentik-retail"))
    env = {"BLUEFLOW_CONFIG": path, "RETAIL_COS_API_KEY": "k", "RETAIL_VPC_API_KEY": "v",
           "PAYMENTS_COS_HMAC_SECRET": "s", "PAYMENTS_VPC_API_KEY": "v2", "PAYMENTS_KENTIK_TOKEN": "t",
           "LAB_COS_HMAC_SECRET": "l"}
    s = Settings.resolve({}, env)
    assert [(x.name, x.plan_id, x.export_id, x.keep_objects, x.sink) for x in s.sources] == [
        ("retail", 11467, 3302, False, "kentik"), ("payments", 20001, 0, True, "kentik"), ("lab", 0, 0, False, "ipfix")]
    assert s.sources[2].ipfix_collectors == "nfcapd.lab.example:4739"
    assert missing_for_worker(s) == [] and s.replication == 3


MIXED_SINKS = """\
sink: kentik
ipfix_collectors: 10.0.0.9:4739
sources:
  - name: to-kentik
    bucket: flowlogs-a
    endpoint: s3.us-south.example
    hmac_access_key: AKID
    hmac_secret_key_env: A_SECRET
    kentik_email: a@example.com
    kentik_token_env: KT_A
    plan_id: 11
  - name: to-nfdump
    bucket: flowlogs-b
    endpoint: s3.eu-de.example
    hmac_access_key: BKID
    hmac_secret_key_env: B_SECRET
    sink: ipfix
    ipfix_collectors: 10.0.0.5:4739,10.0.0.6:4739
  - name: to-default-collector
    bucket: flowlogs-c
    endpoint: s3.eu-de.example
    hmac_access_key: CKID
    hmac_secret_key_env: B_SECRET
    sink: ipfix
"""


def test_each_source_chooses_its_sink_and_collectors_inheriting_the_deployments(tmp_path):
    env = {"BLUEFLOW_CONFIG": write(tmp_path, MIXED_SINKS), "A_SECRET": "a", "B_SECRET": "b", "KT_A": "t"}
    s = Settings.resolve({}, env)
    by_name = {src.name: src for src in s.sources}
    assert {n: (src.sink, src.ipfix_collectors) for n, src in by_name.items()} == {
        "to-kentik": ("kentik", "10.0.0.9:4739"), "to-nfdump": ("ipfix", "10.0.0.5:4739,10.0.0.6:4739"),
        "to-default-collector": ("ipfix", "10.0.0.9:4739")}
    assert missing_for_worker(s) == []  # the IPFIX sources need no Kentik user or token


def test_a_source_with_a_bad_sink_or_no_collector_is_refused_naming_it(tmp_path):
    bad = MIXED_SINKS.replace("    sink: ipfix\n    ipfix_collectors", "    sink: netflow\n    ipfix_collectors")
    assert problems(tmp_path, bad, {"A_SECRET": "a", "B_SECRET": "b", "KT_A": "t"}) == [
        "line 17: sources[1] (to-nfdump).sink: expected one of kentik, ipfix, got 'netflow'"]
    env = {"BLUEFLOW_CONFIG": write(tmp_path, MIXED_SINKS.replace("ipfix_collectors: 10.0.0.9:4739\n", "")),
           "A_SECRET": "a", "B_SECRET": "b", "KT_A": "t"}
    assert missing_for_worker(Settings.resolve({}, env)) == [
        "source to-default-collector: no IPFIX collector given: set --ipfix_collectors host:port[,host:port...]"]
