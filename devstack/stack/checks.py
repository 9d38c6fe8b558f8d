"""The local stack's start checks, each for real: a Kafka produce+consume round trip, an S3 bucket create+list
(HMAC), the COS IAM path (an IAM token, then a listing through the proxy), HTTP answers of the stand-ins."""
from __future__ import annotations

import contextlib
import re
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from devstack.stack.env import DEV_API_KEY, HMAC_ACCESS_KEY, HMAC_SECRET_KEY, SERVICE_INSTANCE, StackError


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def check_kafka(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})
    topic = f"_blueflow_health_{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10)[topic].result(15)
    try:
        payload = f"ping-{uuid.uuid4()}".encode()
        _produce(bootstrap, topic, payload)
        return _consume(bootstrap, topic, payload)
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics([topic], operation_timeout=10)[topic].result(15)


def _produce(bootstrap: str, topic: str, payload: bytes) -> None:
    from confluent_kafka import Producer

    delivered: list[Any] = []
    prod = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 10000})
    prod.produce(topic, payload, on_delivery=lambda err, msg: delivered.append(err))
    prod.flush(15)
    if not delivered or delivered[0] is not None:
        raise StackError(f"Kafka health produce failed: {delivered}")


def _consume(bootstrap: str, topic: str, payload: bytes) -> bool:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "blueflow-devstack-health",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        cons.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        end = time.monotonic() + 15
        while time.monotonic() < end:
            msg = cons.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise StackError(f"Kafka health consume failed: {msg.error()}")
            if msg.value() == payload:
                return True
        raise StackError("Kafka health consume timed out")
    finally:
        cons.close()


def _hmac_client(endpoint: str):
    import ibm_boto3
    from ibm_botocore.client import Config

    return ibm_boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=HMAC_ACCESS_KEY,
                            aws_secret_access_key=HMAC_SECRET_KEY,
                            config=Config(signature_version="s3v4", connect_timeout=2, read_timeout=10,
                                          retries={"total_max_attempts": 1}))


def check_s3(endpoint: str, bucket: str) -> bool:
    from ibm_botocore.exceptions import ClientError

    client = _hmac_client(endpoint)
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    client.list_objects_v2(Bucket=bucket, MaxKeys=1)
    return True


def check_cos_iam(endpoint: str, iam_url: str | None, bucket: str) -> bool:
    status = http_status(endpoint + "/" + bucket)
    if status != 403:
        raise StackError(f"COS IAM proxy answered {status} to an unauthenticated request (want 403)")
    if iam_url:  # full path: IAM token -> proxy -> S3Proxy(none)
        import ibm_boto3
        from ibm_botocore.client import Config

        client = ibm_boto3.client(
            "s3", endpoint_url=endpoint, ibm_api_key_id=DEV_API_KEY, ibm_service_instance_id=SERVICE_INSTANCE,
            ibm_auth_endpoint=iam_url + "/identity/token",
            config=Config(signature_version="oauth", connect_timeout=2, read_timeout=10,
                          retries={"total_max_attempts": 1}))
        client.list_objects_v2(Bucket=bucket, MaxKeys=1)
    return True


def kafka_version_from_log(log_path: str) -> str | None:
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return None
    found = re.findall(r"Kafka version: (\S+)", text)
    return found[-1] if found else None
