"""Settings that used to fail late or silently (issue 22): the Kentik plan id, the VPC API key, the regions
whose metadata labels the flows, and objects of a region without loaded metadata."""
from __future__ import annotations


import pytest

from streams.observe import metrics
from streams.config.settings import Settings, missing_for_worker
from streams.config.values import endpoint_region, regions_for
from streams.stages.enrich import RegionWatch

BASE = {"BLUEFLOW_BUCKET": "b", "BLUEFLOW_COS_ENDPOINT": "s3.direct.us-east.cloud-object-storage.appdomain.cloud",
        "BLUEFLOW_COS_HMAC_ACCESS_KEY": "a", "BLUEFLOW_COS_HMAC_SECRET_KEY": "s", "KENTIK_API_TOKEN": "t",
        "KENTIK_API_EMAIL": "e@x", "KENTIK_PLAN_ID": "11467", "IBM_VPC_API_KEY": "v"}


@pytest.mark.parametrize("endpoint, region", [
    ("s3.direct.us-east.cloud-object-storage.appdomain.cloud", "us-east"),
    ("https://s3.private.eu-de.cloud-object-storage.appdomain.cloud", "eu-de"),
    ("s3.jp-tok.cloud-object-storage.appdomain.cloud:443", "jp-tok"),
    ("s3.us.cloud-object-storage.appdomain.cloud", None),  # cross-region: no VPC region
    ("s3.ams03.cloud-object-storage.appdomain.cloud", None),  # single site
    ("http://127.0.0.1:19080", None), ("", None),
])
def test_the_region_of_a_cos_endpoint(endpoint, region):
    assert endpoint_region(endpoint) == region


def test_regions_come_from_the_flag_else_the_endpoint_and_none_switches_metadata_off():
    endpoint = "s3.direct.us-east.cloud-object-storage.appdomain.cloud"
    assert regions_for("", endpoint) == ["us-east"]
    assert regions_for("us-south, eu-de", endpoint) == ["us-south", "eu-de"]
    assert regions_for("none", endpoint) == [] and regions_for("NONE", "") == []
    assert Settings.from_env(BASE).region_list == ["us-east"]


def test_a_good_v1_command_line_passes_without_regions():
    assert missing_for_worker(Settings.from_env(BASE)) == []


@pytest.mark.parametrize("change, expected", [
    ({"KENTIK_PLAN_ID": "0"}, "--plan_id (or KENTIK_PLAN_ID) must be your Kentik plan id (> 0)"),
    ({"IBM_VPC_API_KEY": ""}, "IBM_VPC_API_KEY is required for the VPC metadata of us-east (or --regions none"),
    ({"BLUEFLOW_COS_ENDPOINT": "s3.us.cloud-object-storage.appdomain.cloud"}, "--regions is required"),
])
def test_start_checks_name_what_is_missing(change, expected):
    problems = missing_for_worker(Settings.from_env({**BASE, **change}))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_without_metadata_no_vpc_key_is_needed_and_ipfix_needs_no_plan():
    assert missing_for_worker(Settings.from_env({**BASE, "IBM_VPC_API_KEY": "", "BLUEFLOW_REGIONS": "none"})) == []
    ipfix = {**BASE, "KENTIK_PLAN_ID": "0", "BLUEFLOW_SINK": "ipfix", "BLUEFLOW_IPFIX_COLLECTORS": "10.0.0.5:4739"}
    assert missing_for_worker(Settings.from_env(ipfix)) == []


def test_objects_of_a_region_without_metadata_are_counted_and_reported_once():
    def count(region: str) -> float:
        return metrics.REGISTRY.get_sample_value("blueflow_objects_region_without_metadata_total",
                                                 {"region": region}) or 0.0

    watch = RegionWatch(lambda source: ("us-south",) if source != "off" else ())
    before = count("us-east")
    first = watch.check("", {"us-east": 3, "us-south": 5})
    assert len(first) == 1 and "region us-east" in first[0] and "add us-east to --regions" in first[0]
    assert "loaded only for us-south" in first[0]
    assert watch.check("", {"us-east": 2}) == []  # reported once, still counted
    assert count("us-east") - before == 5 and count("us-south") == 0.0
    assert len(watch.check("acct-b", {"us-east": 1})) == 1  # another source: its own report
    assert watch.check("off", {"us-east": 1}) == []  # metadata switched off: nothing to report


def test_the_flags_source_and_a_files_source_are_checked_alike_each_in_its_own_words():
    """One source model: the flags make a one-entry list, checked by the same rules as a configuration file's
    sources; the flags' source names the flag or variable to set, a file's source names itself and what it lacks."""
    from dataclasses import replace

    flags = Settings.from_env({**BASE, "KENTIK_API_TOKEN": "", "IBM_VPC_API_KEY": ""})
    [only] = flags.sources
    assert only.from_flags and missing_for_worker(flags) == [
        "KENTIK_API_TOKEN is required", "IBM_VPC_API_KEY is required for the VPC metadata of us-east (or --regions "
        "none: flows labelled with ids only)"]
    listed = replace(flags, sources=(replace(only, name="acct-a", from_flags=False),))
    assert missing_for_worker(listed) == [
        "source acct-a needs a Kentik API token, a VPC API key for the metadata of us-east (or regions: none)"]
    assert (only.about("x"), listed.sources[0].about("x")) == ("x", "source acct-a: x")
