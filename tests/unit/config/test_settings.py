"""Blueflow-compatible flags and env vars; secrets never shown."""
from streams.ops.cli import normalise_blueflow_args
from streams.config.option_table import OPTIONS
from streams.config.settings import Settings, missing_for_worker
from streams.config.sources import implicit_source


def test_flags_without_dashes_are_accepted_like_kentiks_manifests_write_them():
    argv = ["worker", "--bucket_name=b", "plan_id=123", "export_id=9", "-log_level=debug", "--keep_objects"]
    assert normalise_blueflow_args(argv) == ["worker", "--bucket_name=b", "--plan_id=123", "--export_id=9",
                                             "--log_level=debug", "--keep_objects"]


def test_blueflow_environment_variables_configure_the_worker():
    env = {"IBM_VPC_API_KEY": "vpc-secret", "KENTIK_API_TOKEN": "kt-secret", "IBM_COS_API_KEY": "cos-secret",
           "IBM_SERVICE_INSTANCE": "inst", "BLUEFLOW_BUCKET": "b",
           "BLUEFLOW_COS_ENDPOINT": "s3.direct.us-east.cloud-object-storage.appdomain.cloud",
           "KENTIK_API_EMAIL": "a@b.c", "KENTIK_PLAN_ID": "11467", "BLUEFLOW_KEEP_OBJECTS": "true"}
    s = Settings.from_env(env)
    assert implicit_source(s).cos_endpoint_url == "https://s3.direct.us-east.cloud-object-storage.appdomain.cloud"
    assert (s.plan_id, s.keep_objects, s.dry_run) == (11467, True, False)
    assert missing_for_worker(s) == []
    view = repr(s.public_view())
    for secret in ("vpc-secret", "kt-secret", "cos-secret"):
        assert secret not in view
    assert sorted(s.secret_values()) == ["cos-secret", "kt-secret", "vpc-secret"]


def test_missing_settings_are_explained():
    problems = missing_for_worker(Settings.from_env({}))
    text = " ".join(problems)
    assert "--bucket_name" in text and "KENTIK_API_TOKEN" in text and "IBM_COS_API_KEY" in text


def test_every_option_has_a_distinct_env_var():
    envs = [o.env for o in OPTIONS]
    assert len(envs) == len(set(envs))


def test_stream_buffer_bounds_fausts_read_ahead():
    from streams.app import make_app

    assert Settings.from_env({}).stream_buffer == 64
    settings = Settings.from_env({"BLUEFLOW_STREAM_BUFFER": "16"})
    assert make_app(settings).conf.stream_buffer_maxsize == 16
