"""Records in S3: a real S3 API (moto's server) on loopback, through obstore.

obstore and ``moto[server]`` come with the ``test`` extra: a missing one fails the run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import moto.server as moto_server
import obstore
import pytest

from actorflow import task
from actorflow.cache_policies import INPUTS
from actorflow.results import ObjectStorage, decode_record
from actorflow.testing import VirtualClock, use_clock


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


CREDENTIALS = {
    "access_key_id": "testing",
    "secret_access_key": "testing",
    "region": "us-east-1",
}


@pytest.fixture
def bucket(endpoint: str, request: pytest.FixtureRequest) -> str:
    import boto3  # comes with moto

    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
    name = f"cache-{slug}"[:63].strip("-")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name


def storage_for(endpoint: str, bucket: str, **extra: Any) -> ObjectStorage:
    return ObjectStorage(
        f"s3://{bucket}/results",
        endpoint=endpoint,
        client_options={"allow_http": True},
        **CREDENTIALS,
        **extra,
    )


def keys(storage: ObjectStorage) -> list[str]:
    return sorted(meta["path"] for batch in obstore.list(storage.store) for meta in batch)


def test_round_trip_through_s3(endpoint: str, bucket: str) -> None:
    storage = storage_for(endpoint, bucket)
    calls: list[int] = []

    @task(cache_policy=INPUTS, result_storage=storage, cache_result_in_memory=False)
    def square(x: int) -> dict[str, int]:
        calls.append(x)
        return {"x": x, "square": x * x}

    assert square(4) == {"x": 4, "square": 16}
    state = square(4, return_state=True)
    assert state.name == "Cached"
    assert state.result() == {"x": 4, "square": 16}
    assert calls == [4]
    (key,) = keys(storage)  # relative to the storage's prefix; the lease was released
    data, _ = storage.read(key)  # type: ignore[misc]
    assert decode_record(data, key).format == "json"


def test_another_machine_reads_the_record(endpoint: str, bucket: str) -> None:
    writer = storage_for(endpoint, bucket)
    reader = storage_for(endpoint, bucket)  # its own client: nothing shared but the bucket
    assert writer is not reader
    calls: list[str] = []

    def make(tag: str) -> str:
        calls.append(tag)
        return tag.upper()

    first = task(make, cache_policy=INPUTS, result_storage=writer, cache_result_in_memory=False)
    second = task(make, cache_policy=INPUTS, result_storage=reader, cache_result_in_memory=False)
    assert first("a") == "A"
    assert second("a", return_state=True).name == "Cached"
    assert calls == ["a"]


def test_a_url_with_credentials_from_the_environment(
    endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    calls: list[int] = []

    @task(cache_policy=INPUTS, result_storage=f"s3://{bucket}/by-url",
          cache_result_in_memory=False)  # fmt: skip
    def work(x: int) -> int:
        calls.append(x)
        return x

    assert work(1) == work(1) == 1
    assert calls == [1]


def test_writes_are_create_if_absent_and_conditional(endpoint: str, bucket: str) -> None:
    storage = storage_for(endpoint, bucket)
    assert storage.create("k", b"first") is True
    assert storage.create("k", b"second") is False  # the first result wins
    data, version = storage.read("k")  # type: ignore[misc]
    assert data == b"first"
    assert storage.replace("k", b"third", version) is True
    assert storage.replace("k", b"fourth", version) is False  # stale version: refused
    assert storage.read("k")[0] == b"third"  # type: ignore[index]
    assert storage.read("missing") is None


def test_lease_lock(endpoint: str, bucket: str) -> None:
    storage = storage_for(endpoint, bucket)
    handle = storage.try_lock("key")
    assert handle is not None
    assert storage.try_lock("key") is None
    storage.unlock(handle)
    again = storage.try_lock("key")
    assert again is not None
    # A holder that died leaves its lease behind; once expired, a waiter takes it over.
    short = storage_for(endpoint, bucket, lock_lease=0.0)
    abandoned = short.try_lock("other")
    assert abandoned is not None
    taken = short.try_lock("other")
    assert taken is not None and taken != abandoned
    short.unlock(abandoned)  # the old holder's unlock leaves the new lease alone
    assert storage.read(".locks/other.lock") is not None
    short.unlock(taken)
    assert storage.read(".locks/other.lock") is None


def test_expired_and_corrupt_records_in_s3_are_replaced(
    endpoint: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import timedelta

    storage = storage_for(endpoint, bucket)
    calls: list[int] = []

    @task(cache_policy=INPUTS, result_storage=storage, cache_result_in_memory=False,
          cache_expiration=timedelta(seconds=5))  # fmt: skip
    def work(x: int) -> int:
        calls.append(x)
        return len(calls)

    with use_clock(VirtualClock()) as clock:
        assert work(1) == 1
        clock.advance(6)
        assert work(1) == 2  # expired: recomputed and replaced
        assert work(1) == 2
        (path,) = keys(storage)
        obstore.put(storage.store, path, b"actorflow-record 1\n{broken")
        with caplog.at_level(logging.WARNING, logger="actorflow.cache"):
            assert work(1) == 3
        assert "is corrupt" in caplog.text
        assert work(1) == 3
    assert calls == [1, 1, 1]


@pytest.mark.anyio
async def test_async_runs_with_s3_storage(endpoint: str, bucket: str) -> None:
    storage = storage_for(endpoint, bucket)
    calls: list[int] = []

    @task(cache_policy=INPUTS, result_storage=storage, cache_result_in_memory=False)
    async def work(x: int) -> list[int]:
        calls.append(x)
        return [x]

    assert await work(2) == [2]
    state = await work(2, return_state=True)
    assert state.name == "Cached" and await state.result() == [2]
    assert calls == [2]


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "obstore", None)
    with pytest.raises(ImportError, match=r'pip install "actorflow\[s3\]"'):
        ObjectStorage("s3://bucket/prefix")
    with pytest.raises(ImportError, match=r'pip install "actorflow\[s3\]"'):
        task(lambda x: x, result_storage="s3://somewhere-new/prefix")
