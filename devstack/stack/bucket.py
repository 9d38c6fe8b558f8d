"""The local stack's bucket as the dev tools reach it: a client with the HMAC keys of `.devstack/env`, and
emptying it between runs."""
from __future__ import annotations


def hmac_client(env: dict[str, str]):
    from connectors.cos import make_cos_client

    return make_cos_client(env["BLUEFLOW_COS_ENDPOINT"], hmac_access_key=env["BLUEFLOW_COS_HMAC_ACCESS_KEY"],
                           hmac_secret_key=env["BLUEFLOW_COS_HMAC_SECRET_KEY"])


def empty_bucket(client, bucket: str) -> int:
    """Delete every object of `bucket`; how many there were."""
    from connectors.cos import delete_objects, list_objects

    keys = [o.key for o in list_objects(client, bucket, "")]
    for i in range(0, len(keys), 1000):
        delete_objects(client, bucket, keys[i:i + 1000])
    return len(keys)
