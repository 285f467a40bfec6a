"""Records and local storage: expiration, refresh, corruption, serializers, unhashable inputs."""

from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from actorflow import flow, task
from actorflow._cache._hashing import canonical, stable_digest
from actorflow._cache._shared import shared_for
from actorflow.cache_policies import INPUTS, TASK_SOURCE, CacheKeyWarning, UnhashableInput
from actorflow.results import (
    AutoSerializer,
    CorruptRecord,
    LocalStorage,
    decode_record,
    default_storage,
)
from actorflow.testing import VirtualClock, use_clock


def records(root: Path) -> list[Path]:
    """The record files under ``root`` (not temporary files or the lock file)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def forget_memory(storage_root: Path) -> None:
    """Drop what this process keeps in memory for a storage, as a fresh process would."""
    shared_for(LocalStorage(storage_root).location).memory.clear()


# -- expiration, refresh ---------------------------------------------------------------------------
def test_seed_example_inputs_with_expiration_outside_a_flow() -> None:
    sleeps: list[int] = []

    @task(cache_policy=INPUTS, cache_expiration=timedelta(seconds=10))
    def my_stateful_task(x: int) -> int:
        sleeps.append(x)  # stands for print("sleeping"); time.sleep(10)
        return x + 1

    with use_clock(VirtualClock()) as clock:
        assert my_stateful_task(x=1) == 2  # sleeps
        assert my_stateful_task(x=1) == 2  # does not sleep
        assert sleeps == [1]
        clock.advance(9.9)
        assert my_stateful_task(x=1, return_state=True).name == "Cached"
        clock.advance(0.2)  # ... 10 seconds pass ...
        assert my_stateful_task(x=1, return_state=True).name == "Completed"  # sleeps again
        assert sleeps == [1, 1]
        assert my_stateful_task(x=1, return_state=True).name == "Cached"


def test_an_expired_record_is_replaced_in_storage(tmp_path: Path) -> None:
    calls: list[int] = []

    @task(
        cache_policy=INPUTS,
        cache_expiration=timedelta(seconds=5),
        result_storage=str(tmp_path),
        cache_result_in_memory=False,
    )
    def work(x: int) -> int:
        calls.append(x)
        return x * len(calls)

    with use_clock(VirtualClock(start=1000.0)) as clock:
        assert work(3) == 3
        (path,) = records(tmp_path)
        assert decode_record(path.read_bytes(), path.name).expires == 1005.0
        clock.advance(6)
        assert work(3) == 6  # recomputed
        (again,) = records(tmp_path)
        record = decode_record(again.read_bytes(), again.name)
        assert (record.created, record.expires) == (1006.0, 1011.0)
        assert work(3) == 6
    assert calls == [3, 3]


def test_refresh_cache_recomputes_and_overwrites() -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS)
    def work(x: int) -> int:
        calls.append(x)
        return 100 * len(calls)

    refreshing = work.with_options(refresh_cache=True)
    assert work(1) == 100
    assert work(1) == 100
    assert refreshing(1, return_state=True).name == "Completed"
    assert calls == [1, 1]
    assert work(1) == 200  # the refreshed record is what the cache now holds


# -- records on disk -------------------------------------------------------------------------------
def test_records_go_to_actorflow_home_by_default() -> None:
    @task(cache_policy=INPUTS)
    def work(x: int) -> int:
        return x

    work(7)
    home = Path(os.environ["ACTORFLOW_HOME"])
    root = home / "storage"
    assert default_storage() == LocalStorage(root)
    (path,) = records(root)
    record = decode_record(path.read_bytes(), path.name)
    assert record.format == "json"
    assert record.payload == b"7"
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


def test_threads_first_using_a_home_at_once_resolve_its_storage_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorflow._cache import _storage

    resolved: list[str] = []
    resolve = _storage.resolve_storage

    def counting(spec: Any) -> Any:
        resolved.append(spec)
        os.sched_yield()  # let any other thread that found no storage for the home get here too
        return resolve(spec)

    monkeypatch.setattr(_storage, "resolve_storage", counting)
    threads_per_home = 16
    homes = [tmp_path / f"home-{i}" for i in range(12)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for home in homes:
            monkeypatch.setenv("ACTORFLOW_HOME", str(home))
            start = threading.Barrier(threads_per_home)
            seen: list[object] = []

            def first_use(start: threading.Barrier, seen: list[object]) -> None:
                start.wait()
                seen.append(default_storage())

            threads = [
                threading.Thread(target=first_use, args=(start, seen))
                for _ in range(threads_per_home)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(seen) == threads_per_home
            assert all(storage is seen[0] for storage in seen), f"{home}: several storages"
            assert seen[0] == LocalStorage(home / "storage")
            assert default_storage() is seen[0]
    finally:
        sys.setswitchinterval(interval)
    assert sorted(resolved) == sorted(str(home / "storage") for home in homes)


FORK_WITH_CACHE_LOCKS_HELD = """
import os, sys, threading
from actorflow import task
from actorflow._cache._shared import shared_for
from actorflow.cache_policies import INPUTS
from actorflow._cache._storage import resolve_storage

root = sys.argv[1]
calls = []

@task(cache_policy=INPUTS, result_storage=root)
def double(x):
    calls.append(x)
    return 2 * x

assert double(1) == 2 and double(1) == 2 and calls == [1]   # the second call is a memory hit
storage = resolve_storage(root)
shared = shared_for(storage.location)
assert shared.statistics().entries == 1

# A thread of the parent holds the location's lock when the process forks: a child sharing the
# parent's registries would wait for it forever.
held, release = threading.Event(), threading.Event()

def hold():
    with shared.lock:
        held.set()
        release.wait()

holder = threading.Thread(target=hold)
holder.start()
held.wait()
pid = os.fork()
if pid == 0:
    import signal
    signal.alarm(20)  # a child that hangs must not outlive the test
    try:
        fresh = resolve_storage(root) is not storage and shared_for(storage.location) is not shared
        empty = shared_for(storage.location).statistics().entries == 0
        cached = double(1, return_state=True)  # read from storage: the child has no memory of it
        ran = double(2) == 4 and calls == [1, 2]
        ok = fresh and empty and cached.name == "Cached" and ran
    except BaseException:
        os._exit(3)
    os._exit(0 if ok else 2)
release.set()
holder.join()
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_starts_with_fresh_cache_registries(tmp_path: Path) -> None:
    from support import run_python

    code = FORK_WITH_CACHE_LOCKS_HELD.replace("sys.argv[1]", repr(str(tmp_path / "records")))
    result = run_python(code, timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "0", result.stderr[-2000:]


RESET_FORGETS_CACHE_REGISTRIES = """
import sys
from actorflow._cache._shared import shared_for
from actorflow._cache._storage import default_storage, resolve_storage
from actorflow._core import runtime

root = sys.argv[1]
storage, home, shared = resolve_storage(root), default_storage(), shared_for("loc")
assert resolve_storage(root) is storage and shared_for("loc") is shared
runtime.reset()
assert resolve_storage(root) is not storage and resolve_storage(root) == storage
assert default_storage() is not home and shared_for("loc") is not shared
print("ok")
"""


def test_runtime_reset_forgets_the_cache_registries(tmp_path: Path) -> None:
    from support import run_python

    code = RESET_FORGETS_CACHE_REGISTRIES.replace("sys.argv[1]", repr(str(tmp_path)))
    result = run_python(code, timeout=30, ACTORFLOW_HOME=str(tmp_path / "home"))
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="torn"),
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 1]), id="flipped-byte"),
        pytest.param(lambda data: b"garbage", id="garbage"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_a_corrupt_record_is_a_logged_miss_and_is_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Any
) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS, result_storage=str(tmp_path))
    def work(x: int) -> dict[str, int]:
        calls.append(x)
        return {"x": x, "n": len(calls)}

    assert work(1) == {"x": 1, "n": 1}
    (path,) = records(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    forget_memory(tmp_path)
    with caplog.at_level(logging.WARNING, logger="actorflow.cache"):
        state = work(1, return_state=True)
    assert state.name == "Completed"  # recomputed, never a wrong value or a crash
    assert state.result() == {"x": 1, "n": 2}
    assert "is corrupt" in caplog.text and "treated as a miss" in caplog.text
    assert decode_record(path.read_bytes(), path.name).format == "json"  # overwritten
    forget_memory(tmp_path)
    assert work(1, return_state=True).name == "Cached"
    assert calls == [1, 1]


def test_decode_record_rejects_a_record_of_another_key(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    @task(cache_policy=INPUTS, result_storage=storage)
    def work(x: int) -> int:
        return x

    work(1)
    (path,) = records(tmp_path)
    with pytest.raises(CorruptRecord, match="belongs to key"):
        decode_record(path.read_bytes(), "another-key")


def test_local_storage_create_is_create_if_absent(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert storage.create("a/b", b"first") is True
    assert storage.create("a/b", b"second") is False
    assert storage.read("a/b") == (b"first", None)
    assert storage.replace("a/b", b"third", None) is True
    assert storage.read("a/b") == (b"third", None)
    assert storage.read("missing") is None
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]  # no temp files left
    with pytest.raises(ValueError, match="Invalid result storage key"):
        storage.read("../outside")
    assert pickle.loads(pickle.dumps(storage)) == storage


# -- serializers -----------------------------------------------------------------------------------
class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        ([1, "a", None, 2.5, {"k": [True]}], "json"),
        ((1, 2), "cloudpickle"),
        ({1: "a"}, "cloudpickle"),
        ({"a", "b"}, "cloudpickle"),
        (float("nan"), "cloudpickle"),
        (2**70, "cloudpickle"),
        (Point(3), "cloudpickle"),
    ],
)
def test_auto_serializer_uses_json_only_when_exact(tmp_path: Path, value: Any, fmt: str) -> None:
    @task(cache_policy=TASK_SOURCE, result_storage=str(tmp_path), cache_result_in_memory=False)
    def produce() -> Any:
        return value

    first = produce()
    second = produce(return_state=True)
    assert second.name == "Cached"
    hit = second.result()
    assert type(hit) is type(first)
    if value == value:  # NaN is the exception to equality
        assert hit == first
    (path,) = records(tmp_path)
    assert decode_record(path.read_bytes(), path.name).format == fmt


def test_a_json_task_never_loads_a_pickle_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def make(x: int) -> list[int]:
        calls.append("ran")
        return [x]

    pickling = task(make, cache_policy=INPUTS, result_storage=str(tmp_path),
                    result_serializer="pickle")  # fmt: skip
    json_only = task(make, cache_policy=INPUTS, result_storage=str(tmp_path),
                     result_serializer="json")  # fmt: skip
    assert pickling(1) == [1]
    forget_memory(tmp_path)
    with caplog.at_level(logging.WARNING, logger="actorflow.cache"):
        assert json_only(1, return_state=True).name == "Completed"
    assert "does not read" in caplog.text
    assert calls == ["ran", "ran"]
    (path,) = records(tmp_path)
    assert decode_record(path.read_bytes(), path.name).format == "json"


def test_compressed_and_object_serializers(tmp_path: Path) -> None:
    class Upper:
        type = "upper"

        def dumps(self, value: str) -> bytes:
            return value.upper().encode()

        def loads(self, data: bytes) -> str:
            return data.decode()

    @task(cache_policy=INPUTS, result_storage=str(tmp_path / "c"),
          result_serializer="compressed/pickle", cache_result_in_memory=False)  # fmt: skip
    def big(n: int) -> str:
        return "x" * n

    @task(cache_policy=INPUTS, result_storage=str(tmp_path / "u"), result_serializer=Upper(),
          cache_result_in_memory=False)  # fmt: skip
    def shout(s: str) -> str:
        return s

    assert big(10_000) == big(10_000) == "x" * 10_000
    (path,) = records(tmp_path / "c")
    assert path.stat().st_size < 1000
    assert decode_record(path.read_bytes(), path.name).format == "compressed/cloudpickle"
    assert shout("hi") == "hi"
    assert shout("hi") == "HI"  # what the serializer wrote
    (path,) = records(tmp_path / "u")
    assert decode_record(path.read_bytes(), path.name).format == "upper"


def test_hits_return_fresh_copies_of_mutable_results() -> None:
    @task(cache_policy=INPUTS)
    def items(n: int) -> list[int]:
        return list(range(n))

    first = items(3)
    first.append(99)
    second = items(3)
    second.append(100)
    assert items(3) == [0, 1, 2]


def test_an_unserializable_result_completes_unpersisted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS, result_storage=str(tmp_path))
    def make_lock(x: int) -> Any:
        calls.append(x)
        return threading.Lock()

    state = make_lock(1, return_state=True)
    assert state.is_completed()
    assert type(state.result()) is type(threading.Lock())
    warning = next(r for r in caplog.records if "serializing result" in r.getMessage())
    assert warning.levelname == "WARNING"
    assert "cannot be serialized" in warning.getMessage() or "pickle" in warning.getMessage()
    assert records(tmp_path) == []
    make_lock(1)  # nothing was recorded, so it runs again
    assert calls == [1, 1]


def test_a_storage_failure_fails_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    @task(cache_policy=INPUTS, result_storage=str(blocker))
    def double(x: int) -> int:
        return 2 * x

    state = double(1, return_state=True)
    assert state.is_failed()  # unlike a result that cannot be serialized, nothing completes
    assert "cannot be stored: a part of it is a record, not a folder" in (state.message or "")


# -- keys ------------------------------------------------------------------------------------------
def test_canonical_encoding_tells_types_apart_and_ignores_hash_order() -> None:
    distinct = [1, True, 1.0, "1", b"1", (1,), [1], {1}, frozenset({1}), {"1": 1}, None]
    assert len({canonical(v) for v in distinct}) == len(distinct)
    forward = {f"k{i}" for i in range(50)}
    backward = set(sorted(forward, reverse=True))
    assert stable_digest(forward) == stable_digest(backward)
    assert stable_digest({"a": 1, "b": 2}) == stable_digest({"b": 2, "a": 1})
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    assert stable_digest(cyclic) == stable_digest(cyclic)


class Client:
    def __init__(self) -> None:
        self.name = "db"
        self.pool = {"conns": [threading.Lock()]}


def test_an_unhashable_input_fails_the_run_naming_the_argument() -> None:
    calls: list[str] = []

    @task(cache_policy=INPUTS)
    def query(sql: str, client: Client) -> str:
        calls.append(sql)
        return sql

    state = query("select 1", Client(), return_state=True)
    assert state.is_failed()
    assert calls == []
    message = state.message or ""
    assert "argument 'client' cannot be hashed stably" in message
    assert "client.pool['conns'][0]" in message
    assert "_thread.lock" in message
    assert "cache_unhashable" in message
    with pytest.raises(UnhashableInput, match="task 'query': argument 'client'"):
        state.result()


def test_an_unhashable_input_can_be_excluded_or_run_uncached_with_a_warning() -> None:
    calls: list[str] = []

    @task(cache_policy=INPUTS - "client")
    def query(sql: str, client: Client) -> str:
        calls.append(sql)
        return sql

    assert query("a", Client()) == query("a", Client()) == "a"
    assert calls == ["a"]

    @task(cache_policy=INPUTS, cache_unhashable="warn")
    def lenient(sql: str, client: Client) -> str:
        calls.append(sql)
        return sql

    with pytest.warns(CacheKeyWarning, match="argument 'client'.*not cached"):
        assert lenient("b", Client()) == "b"
    with pytest.warns(CacheKeyWarning):
        assert lenient("b", Client()) == "b"
    assert calls == ["a", "b", "b"]


def test_tasks_with_the_same_inputs_do_not_share_records() -> None:
    @task(cache_policy=INPUTS)
    def double(x: int) -> int:
        return 2 * x

    @task(cache_policy=INPUTS)
    def triple(x: int) -> int:
        return 3 * x

    assert double(2) == 4
    assert triple(2) == 6  # a different task: its own key, not double's record


def test_a_bound_method_task_keys_on_its_instance() -> None:
    class Scaler:
        def __init__(self, k: int) -> None:
            self.k = k

        @task(cache_policy=INPUTS)
        def scale(self, x: int) -> int:
            return self.k * x

    assert Scaler(2).scale(5) == 10
    assert Scaler(3).scale(5) == 15


# -- async runs ------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_async_tasks_cache_on_both_backends(tmp_path: Path) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS, result_storage=str(tmp_path))
    async def fetch(x: int) -> dict[str, int]:
        calls.append(x)
        await anyio.lowlevel.checkpoint()
        return {"x": x}

    @task(cache_policy=INPUTS, result_storage=str(tmp_path), cache_result_in_memory=False)
    async def fetch_from_disk(x: int) -> dict[str, int]:
        calls.append(-x)
        return {"x": x}

    assert await fetch(1) == {"x": 1}
    state = await fetch(1, return_state=True)
    assert state.name == "Cached" and await state.result() == {"x": 1}
    assert await fetch_from_disk(2) == await fetch_from_disk(2) == {"x": 2}
    assert calls == [1, -2]


@pytest.mark.anyio
async def test_async_flow_with_persisting_default(tmp_path: Path) -> None:
    calls: list[int] = []

    @task
    async def step(x: int) -> int:
        calls.append(x)
        return x + 1

    @flow(persist_result=True, result_storage=str(tmp_path))
    async def pipeline() -> list[str]:
        first = await step(1, return_state=True)
        second = await step(1, return_state=True)
        return [first.name, second.name]

    assert await pipeline() == ["Completed", "Cached"]
    assert await pipeline() == ["Completed", "Cached"]
    assert calls == [1, 1]


def test_auto_serializer_falls_back_to_pickle_for_surrogate_strings(tmp_path: Path) -> None:
    name = os.fsdecode(b"report-\xff.csv")  # as os.listdir returns undecodable names

    @task(persist_result=True, result_storage=str(tmp_path))
    def listing() -> list[str]:
        return [name]

    @flow
    def twice() -> tuple[list[str], list[str], str]:
        first = listing(return_state=True)
        second = listing(return_state=True)
        return first.result(), second.result(), second.name

    # The second call is served from the record, which had to be written as pickle.
    assert twice() == ([name], [name], "Cached")
    fmt, _ = AutoSerializer().dumps([name])
    assert fmt in ("pickle", "cloudpickle")


def test_a_key_that_names_a_folder_of_records_fails_naming_task_and_path(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()

    @task(result_storage_key="reports", result_storage=str(tmp_path))
    def report() -> int:
        return 1

    with pytest.raises(
        ValueError,
        match=r"task 'report': its result_storage_key .*'reports'.*"
        r"it is a folder of other records",
    ):
        report()


def test_keys_that_are_both_record_and_folder_fail_naming_both(tmp_path: Path) -> None:
    @task(cache_key_fn=lambda ctx, params: "daily", result_storage=str(tmp_path))
    def daily() -> int:
        return 1

    @task(cache_key_fn=lambda ctx, params: "daily/extra", result_storage=str(tmp_path))
    def extra() -> int:
        return 2

    assert daily() == 1
    with pytest.raises(
        ValueError,
        match=r"task 'extra': its cache key .*'daily/extra'.*"
        r"a part of it is a record, not a folder",
    ):
        extra()


def test_records_keyed_on_a_flow_run_leave_memory_when_it_ends(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    shared = shared_for(storage.location)

    @task(persist_result=True, result_storage=storage)  # DEFAULT: keyed on the flow run
    def blob(i: int) -> bytes:
        return bytes([i]) * 1_000_000

    @flow
    def many() -> int:
        results = blob.map(range(10)).result()
        during = shared.statistics()
        assert during.entries == 10 and during.bytes >= 10_000_000, during
        return len(results)

    assert many() == 10
    after = shared.statistics()
    assert (after.entries, after.bytes, after.owners) == (0, 0, 0)


def test_memory_tier_is_bounded_by_bytes_and_skips_large_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorflow._cache import _shared

    monkeypatch.setattr(_shared, "MAX_BYTES", 3_000_000)
    storage = LocalStorage(tmp_path)
    shared = shared_for(storage.location)

    @task(cache_policy=INPUTS, result_storage=storage)
    def text(i: int, size: int) -> str:
        return str(i) * size

    for i in range(6):
        assert text(i, 1_000_000) == str(i) * 1_000_000
        assert shared.statistics().bytes <= 3_000_000
    assert shared.statistics().entries == 2  # the most recent ones that fit
    huge = text(9, _shared.MAX_PAYLOAD + 1)  # a str too large to keep: stored, not remembered
    assert len(huge) == _shared.MAX_PAYLOAD + 1
    assert all(len(value) <= 1_000_100 for _, _, value, _ in shared.memory.values())
    assert text(9, _shared.MAX_PAYLOAD + 1) == huge  # a hit, read from storage


def test_a_run_keyed_on_itself_is_not_kept_in_memory(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    @task(persist_result=True, result_storage=storage)  # DEFAULT outside any flow
    def alone() -> list[int]:
        return [1, 2, 3]

    assert alone() == [1, 2, 3]
    assert shared_for(storage.location).statistics().entries == 0


def test_configured_key_storage_holds_the_records_and_survives_combining(tmp_path: Path) -> None:
    keys, results = tmp_path / "keys", tmp_path / "results"
    policy = (INPUTS + TASK_SOURCE).configure(key_storage=str(keys))
    assert (policy - "y").key_storage == str(keys)
    assert (INPUTS.configure(key_storage=str(keys)) + TASK_SOURCE).key_storage == str(keys)
    assert INPUTS.key_storage is None  # configure gives a copy

    @task(cache_policy=policy - "y", result_storage=str(results))
    def add(x: int, y: int) -> int:
        return x + y

    assert add(1, 2) == 3
    assert add(1, 5) == 3  # y is left out of the key
    assert len(records(keys)) == 1
    assert not results.exists()
