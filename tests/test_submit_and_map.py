"""submit, map, futures, wait / as_completed, wait_for and input resolution."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from actorflow import RunRecorder, allow_failure, flow, quote, task, unmapped
from actorflow.exceptions import MappingLengthMismatch, MappingMissingIterable, ParameterBindError
from actorflow.futures import (
    DoneAndNotDoneFutures,
    PrefectFuture,
    TaskFuture,
    TaskFutureList,
    as_completed,
    wait,
)
from actorflow.states import State


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task
def identity(x: Any) -> Any:
    return x


@task
def fails(x: Any = None) -> None:
    raise ValueError("Fail task")


@task
async def aidentity(x: Any) -> Any:
    await anyio.lowlevel.checkpoint()
    return x


def test_submit_outside_flow_raises() -> None:
    with pytest.raises(RuntimeError, match="Unable to determine task runner to use for submission"):
        add.submit(1)
    with pytest.raises(RuntimeError, match="Unable to determine task runner to use for mapped"):
        add.map([1, 2])


def test_map_outside_flow_binds_its_arguments_first() -> None:
    # As in Prefect: a call that cannot bind says so, wherever it is made.
    with pytest.raises(ParameterBindError, match="too many positional arguments"):
        add.map([1], [2], [3])


def test_submit_returns_future_with_result_and_state() -> None:
    @flow
    def my_flow() -> tuple[Any, ...]:
        future = add.submit(1, 2)
        assert isinstance(future, TaskFuture) and PrefectFuture is TaskFuture
        result = future.result()
        return result, future.state, future.task_run_id

    result, state, run_id = my_flow()
    assert result == 3
    assert state.is_completed() and state.name == "Completed"
    import uuid

    assert isinstance(run_id, uuid.UUID)


def test_future_result_raise_on_failure() -> None:
    @flow
    def my_flow() -> Any:
        future = fails.submit()
        with pytest.raises(ValueError, match="Fail task"):
            future.result()
        return future.result(raise_on_failure=False)

    exc = my_flow()
    assert isinstance(exc, ValueError) and str(exc) == "Fail task"


def test_futures_as_arguments_resolve_at_any_depth() -> None:
    @dataclasses.dataclass
    class Box:
        value: Any

    @attrs.define
    class Crate:
        value: Any

    @flow
    def my_flow() -> Any:
        one = add.submit(0)
        two = add.submit(1)
        return identity.submit(
            {"list": [one, two], "tuple": (one,), "set": {two}, "key": {one: "x"},
             "dc": Box(one), "attrs": Crate([two])}
        ).result()  # fmt: skip

    out = my_flow()
    assert out["list"] == [1, 2]
    assert out["tuple"] == (1,)
    assert out["set"] == {2}
    assert out["key"] == {1: "x"}
    assert out["dc"].value == 1
    assert out["attrs"].value == [2]


def test_lineage_is_recorded() -> None:
    @flow
    def my_flow() -> tuple[Any, Any, Any]:
        a = add.submit(1)
        b = add.submit(a)
        b.wait()
        return a.task_run_id, b.task_run.upstream, b.task_run.parent

    a_id, upstream, parent = my_flow()
    assert upstream == [a_id]
    assert parent is not None and parent.is_flow


def test_upstream_failure_leaves_downstream_not_ready() -> None:
    ran: list[Any] = []

    @task
    def downstream(x: Any) -> None:
        ran.append(x)

    @flow
    def my_flow() -> dict[str, State[Any]]:
        upstream = fails.submit()
        down = downstream.submit(upstream)
        down.wait()
        # (a dict: a returned tuple of states would decide the flow's own state)
        return {"up": upstream.state, "down": down.state}

    states = my_flow()
    up_state, down_state = states["up"], states["down"]
    assert up_state.is_failed()
    assert down_state.is_pending() and down_state.name == "NotReady"
    assert down_state.message is not None
    assert "did not reach a 'COMPLETED' state." in down_state.message
    assert ran == []


def test_allow_failure_passes_the_exception() -> None:
    @flow
    def my_flow() -> Any:
        upstream = fails.submit()
        return identity.submit(allow_failure(upstream)).result()

    assert isinstance(my_flow(), ValueError)


def test_allow_failure_in_wait_for_and_nested() -> None:
    @flow
    def my_flow() -> tuple[Any, Any]:
        upstream = fails.submit()
        ordered = add.submit(1, wait_for=[allow_failure(upstream)])
        nested = identity.submit(allow_failure([upstream, 1, 2]))
        return ordered.result(), nested.result()

    ordered, nested = my_flow()
    assert ordered == 2
    assert isinstance(nested[0], ValueError) and nested[1:] == [1, 2]


def test_marks_are_frozen_values_compared_by_kind_and_pickled_whole() -> None:
    import pickle

    from actorflow.utilities.annotations import opaque

    assert quote([1]) == quote([1]) and quote(1) != unmapped(1)
    assert hash(unmapped(2)) == hash(unmapped(2)) and len({allow_failure(1), unmapped(1)}) == 2
    assert repr(allow_failure(3)) == "allow_failure(value=3)"
    assert quote("x").unquote() == "x"
    assert pickle.loads(pickle.dumps(opaque({"k": 1}))) == opaque({"k": 1})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        unmapped(1).value = 2  # type: ignore[misc]


def test_futures_inside_marks_inside_containers_are_resolved() -> None:
    @flow
    def my_flow() -> Any:
        upstream = add.submit(1)
        return identity.submit({"a": [unmapped(upstream)], "b": (allow_failure(upstream),)})

    # Waited for (collected through the marks), then resolved in place of the marks.
    assert my_flow().result() == {"a": [2], "b": (2,)}


def test_quote_stops_resolution() -> None:
    @flow
    def my_flow() -> bool:
        future = add.submit(1)
        future.wait()
        (value,) = identity.submit(quote([future])).result()
        return value is future  # the task received the future itself, unresolved

    assert my_flow() is True


def test_wait_for_orders_runs() -> None:
    order: list[str] = []
    lock = threading.Lock()
    gate = threading.Event()

    @task
    def step(name: str, block: bool = False) -> None:
        if block:
            assert gate.wait(5)
        with lock:
            order.append(name)

    @flow
    def my_flow() -> None:
        a = step.submit("a", True)
        b = step.submit("b")
        c = step.submit("c", wait_for=[a, b])
        gate.set()
        step("d", wait_for=[c])

    my_flow()
    assert order.index("c") > order.index("a")
    assert order.index("c") > order.index("b")
    assert order[-1] == "d"


def test_wait_for_failed_upstream_on_direct_call() -> None:
    @flow
    def my_flow() -> dict[str, State[Any]]:
        failed = fails.submit()
        return {"state": add(1, wait_for=[failed], return_state=True)}

    state = my_flow()["state"]
    assert state.name == "NotReady"


def test_map_with_unmapped_and_static_values() -> None:
    @task
    def sum_plus(x: int, static_iterable: list[int]) -> int:
        return x + sum(static_iterable)

    @flow
    def sum_it(numbers: list[int], static_iterable: list[int]) -> list[int]:
        futures = sum_plus.map(numbers, unmapped(static_iterable))
        assert isinstance(futures, TaskFutureList)
        return futures.result()

    assert sum_it([4, 5, 6], [1, 2, 3]) == [10, 11, 12]


def test_map_rules_for_strings_dicts_generators_and_defaults() -> None:
    @task
    def concat(x: str, y: str) -> str:
        return x + y

    @task
    def with_default(x: int, y: list[int] = [1, 4]) -> int:  # noqa: B006
        return x + sum(y)

    @flow
    def my_flow() -> tuple[Any, ...]:
        return (
            concat.map(["a", "b", "c"], "test").result(),
            identity.map({"k1": 1, "k2": 2}).result(),
            add.map(x for x in range(3)).result(),
            with_default.map([1, 2, 3]).result(),
            add.map(quote([1, 2, 3])).result(),
            add.map(range(2), y=unmapped(10)).result(),
        )

    strings, dict_keys, generated, defaults, quoted, ranged = my_flow()
    assert strings == ["atest", "btest", "ctest"]
    assert dict_keys == ["k1", "k2"]
    assert generated == [1, 2, 3]
    assert defaults == [6, 7, 8]
    assert quoted == [2, 3, 4]
    assert ranged == [10, 11]


def test_map_over_future_result() -> None:
    @task
    def make_list() -> list[int]:
        return [1, 2, 3]

    @flow
    def my_flow() -> list[int]:
        return add.map(make_list.submit()).result()

    assert my_flow() == [2, 3, 4]


def test_map_errors() -> None:
    @flow
    def mismatch() -> None:
        add.map([1, 2, 3], [1, 2])

    @flow
    def no_iterable() -> None:
        add.map(5, 6)

    with pytest.raises(MappingLengthMismatch, match=r"Got lengths: \{'x': 3, 'y': 2\}"):
        mismatch()
    with pytest.raises(MappingMissingIterable, match="No iterable parameters were received"):
        no_iterable()


def test_map_with_allow_failure_of_futures() -> None:
    @task
    def fails_on_two(x: int) -> int:
        if x == 2:
            raise ValueError("Fail task")
        return x

    @flow
    def my_flow() -> list[Any]:
        return identity.map(allow_failure(fails_on_two.map([1, 2, 3]))).result()

    first, second, third = my_flow()
    assert (first, third) == (1, 3)
    assert isinstance(second, ValueError)


def test_future_list_result_raises_first_failure_in_order() -> None:
    @task
    def maybe(x: int) -> int:
        if x in (2, 3):
            raise ValueError(f"bad {x}")
        return x

    @flow
    def my_flow() -> list[Any]:
        futures = maybe.map([1, 2, 3])
        with pytest.raises(ValueError, match="bad 2"):
            futures.result()
        return futures.result(raise_on_failure=False)

    out = my_flow()
    assert out[0] == 1 and [str(e) for e in out[1:]] == ["bad 2", "bad 3"]


def test_map_return_state() -> None:
    @flow
    def my_flow() -> Any:
        return add.map([1, 2], return_state=True)

    states = my_flow()
    assert [s.result() for s in states] == [2, 3]


def test_wait_returns_done_and_not_done_sets_and_never_raises() -> None:
    gate = threading.Event()

    @task
    def blocked() -> None:
        assert gate.wait(5)

    @flow
    def my_flow() -> tuple[DoneAndNotDoneFutures[Any], DoneAndNotDoneFutures[Any]]:
        quick = add.submit(1)
        quick.wait()
        slow = blocked.submit()
        first = wait([quick, slow, quick], timeout=0.01)
        gate.set()
        return first, wait([quick, slow])

    first, second = my_flow()
    assert isinstance(first.done, set) and len(first.done) == 1
    assert len(first.not_done) == 1
    assert len(second.done) == 2 and not second.not_done


def test_future_result_timeout() -> None:
    gate = threading.Event()

    @task
    def blocked() -> None:
        assert gate.wait(5)

    @flow
    def my_flow() -> None:
        future = blocked.submit()
        future.wait(0.01)
        assert not future.state.is_final()
        with pytest.raises(TimeoutError, match=r"did not complete within 0\.01 seconds"):
            future.result(timeout=0.01)
        gate.set()

    my_flow()


def test_as_completed_yields_in_completion_order_and_times_out() -> None:
    gates = [threading.Event() for _ in range(3)]

    @task
    def waits(i: int) -> int:
        assert gates[i].wait(5)
        return i

    @flow
    def my_flow() -> list[int]:
        futures = [waits.submit(i) for i in range(3)]
        completed = as_completed(futures)
        order = []
        for i in (2, 0, 1):
            gates[i].set()
            order.append(next(completed).result())
        return order

    assert my_flow() == [2, 0, 1]


def test_as_completed_timeout_message() -> None:
    gate = threading.Event()

    @task
    def blocked() -> None:
        assert gate.wait(5)

    @flow
    def my_flow() -> list[Any]:
        done = add.submit(1)
        done.wait()
        slow = blocked.submit()
        seen = []
        with pytest.raises(TimeoutError, match=r"^1 \(of 2\) futures unfinished"):
            for future in as_completed([done, slow], timeout=0.05):
                seen.append(future)
        gate.set()
        return seen

    seen = my_flow()
    assert len(seen) == 1


def test_add_done_callback_receives_the_future() -> None:
    got: list[Any] = []

    @flow
    def my_flow() -> None:
        future = add.submit(1)
        future.add_done_callback(got.append)
        future.wait()
        future.add_done_callback(got.append)  # already done: called at once

    my_flow()
    assert len(got) == 2 and all(isinstance(f, TaskFuture) for f in got)


def test_submit_return_state() -> None:
    @flow
    def my_flow() -> dict[str, State[Any]]:
        return {"state": add.submit(1, return_state=True)}

    state = my_flow()["state"]
    assert state.is_completed() and state.result() == 2


def test_recorder_sees_every_transition() -> None:
    @flow
    def my_flow() -> None:
        add.submit(1).wait()

    with RunRecorder() as recorder:
        my_flow()
    flows = recorder.runs("flow")
    tasks = recorder.runs("task")
    assert len(flows) == 1 and len(tasks) == 1
    assert recorder.history(tasks[0]) == ["Pending", "Running", "Completed"]
    assert recorder.history(flows[0]) == ["Pending", "Running", "Completed"]
    task_event = next(e for e in recorder.events if e.run_id == tasks[0])
    assert task_event.flow_run_id == flows[0]
    assert task_event.to_dict()["state_type"] == "PENDING"


# -- async flows --------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_async_submit_and_await(anyio_backend: str) -> None:
    @flow
    async def my_flow() -> list[Any]:
        futures = [aidentity.submit(i) for i in range(5)]
        sync_future = add.submit(futures[0])
        return [await f for f in futures] + [await sync_future]

    assert await my_flow() == [0, 1, 2, 3, 4, 1]


@pytest.mark.anyio
async def test_async_map_and_future_chain(anyio_backend: str) -> None:
    @flow
    async def my_flow() -> list[Any]:
        firsts = aidentity.map([1, 2, 3])
        seconds = aidentity.map(firsts)
        return [await f for f in seconds]

    assert await my_flow() == [1, 2, 3]


@pytest.mark.anyio
async def test_blocking_waits_in_an_async_flow_suspend_it_and_the_loop_goes_on(
    anyio_backend: str,
) -> None:
    ticks: list[int] = []

    @task
    async def slow(x: int) -> int:
        await anyio.sleep(0.05)  # needs the flow's own loop to go on
        return x * 2

    async def ticker() -> None:
        while True:
            ticks.append(len(ticks))
            await anyio.sleep(0.005)

    @flow
    async def blocking() -> tuple[int, list[int], bool, int]:
        first = slow.submit(1)
        before = len(ticks)
        value = first.result()  # blocks the body, not the loop: the ticker goes on meanwhile
        assert len(ticks) > before
        second = slow.submit(2)
        second.wait()
        futures = slow.map([3, 4])
        done, not_done = wait(futures)
        assert (len(done), len(not_done)) == (2, 0)
        late = slow.submit(5)
        late.wait(0.001)
        timed_out = not late.done()
        return value, futures.result(), timed_out, late.result(timeout=5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)  # another task on the same loop
        result = await blocking()
        tg.cancel_scope.cancel()
    assert result == (2, [6, 8], True, 10)


@pytest.mark.anyio
async def test_sync_task_result_from_async_flow(anyio_backend: str) -> None:
    @flow
    async def my_flow() -> int:
        future = add.submit(41)
        return future.result()  # a sync body runs on a worker thread: blocking here is allowed

    assert await my_flow() == 42


def test_map_takes_no_more_of_an_iterator_than_its_sized_siblings_need() -> None:
    import itertools

    taken: list[int] = []

    def watched(source: Any) -> Any:
        for item in source:
            taken.append(item)
            yield item

    @task
    def pair(a: int, b: int) -> int:
        return a * 10 + b

    @flow
    def endless() -> None:
        pair.map(watched(itertools.count()), [1, 2, 3])

    with pytest.raises(MappingLengthMismatch, match="'b': 3, 'a': 'more than 3'"):
        endless()
    assert taken == [0, 1, 2, 3]  # one past what the list proves is needed, no more

    @flow
    def matching() -> list[int]:
        return pair.map(iter([1, 2]), (5, 6)).result()

    assert matching() == [15, 26]

    @flow
    def short() -> None:
        pair.map(iter([1]), [5, 6])

    with pytest.raises(MappingLengthMismatch, match="'b': 2, 'a': 1"):
        short()


def test_map_over_iterators_alone_goes_in_step_and_refuses_an_endless_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import itertools

    from actorflow._core import _resolve

    monkeypatch.setattr(_resolve, "MAX_UNSIZED_MAP", 50)

    @task
    def pair(a: int, b: int) -> int:
        return a + b

    @flow
    def in_step() -> list[int]:
        return pair.map(iter(range(3)), (x for x in range(10, 13))).result()

    assert in_step() == [10, 12, 14]

    @flow
    def uneven() -> None:
        pair.map(iter(range(3)), itertools.count())

    with pytest.raises(MappingLengthMismatch, match="'a': 3, 'b': 'more than 3'"):
        uneven()

    @flow
    def endless() -> None:
        pair.map(itertools.count(), unmapped(1))

    with pytest.raises(MappingLengthMismatch, match="endless iterator cannot be mapped"):
        endless()
