"""Prefect 3.9.1 parity: what a script ported from Prefect observes, case by case.

Each test asserts what Prefect 3.9.1 does (values, exception types, exact messages, state names),
measured by running the same code on Prefect; the Prefect test it comes from is named in the test's
docstring. The first part holds the behaviours where actorflow still differs (these tests fail until
the core matches Prefect); the second part holds behaviours that already agree, so that they stay
agreed. actorflow's deliberate departures (unwaited futures waited for, cancellable futures,
deadlock-free pools, bounded memory, loud cache keys) are not asserted here.
"""

from __future__ import annotations

import datetime
import inspect
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorflow import Flow, Task, allow_failure, flow, get_run_logger, quote, tags, task, unmapped
from actorflow.cache_policies import DEFAULT, FLOW_PARAMETERS, INPUTS, NO_CACHE, TASK_SOURCE
from actorflow.exceptions import (
    CancelledRun,
    FailedRun,
    MappingLengthMismatch,
    MappingMissingIterable,
    MissingContextError,
    ParameterBindError,
    PausedRun,
    ReservedArgumentError,
    UnfinishedRun,
)
from actorflow.futures import PrefectFuture, PrefectFutureList, as_completed, wait
from actorflow.states import (
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Paused,
    Pending,
    Running,
    State,
    StateType,
)
from actorflow.task_runners import ThreadPoolTaskRunner

ROOT = Path(__file__).resolve().parent.parent


def exact(message: str) -> str:
    """A ``match=`` pattern for exactly this message."""
    return f"^{re.escape(message)}$"


def key() -> str:
    """A cache key no other test uses."""
    return f"parity-{uuid.uuid4().hex}"


class Records(logging.Handler):
    """Collects the log records that reach the root logger."""

    def __init__(self) -> None:
        super().__init__(level=0)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def run_lines(self) -> list[tuple[str, str, str]]:
        """(logger, level, first line of message) for the run loggers' records."""
        return [
            (r.name, r.levelname, r.getMessage().splitlines()[0])
            for r in self.records
            if r.name in ("actorflow.flow_runs", "actorflow.task_runs")
        ]


@pytest.fixture
def root_records() -> Iterator[Records]:
    """A handler on the root logger, as an application that configured logging has."""
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def run_script(
    tmp_path: Path, source: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "ACTORFLOW_HOME": str(tmp_path / "home")}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def result_of(state: State[Any], raise_on_failure: bool = True) -> Any:
    """A state's result in async code, whether ``result()`` gives it or an awaitable of it.

    Prefect 3.9.1 returns an awaitable there (see test_state_result_is_awaitable_in_async_code);
    the tests of other behaviours must not depend on that difference.
    """
    value = state.result(raise_on_failure=raise_on_failure)
    if inspect.isawaitable(value):
        value = await value
    return value


def console(stderr: str) -> list[str]:
    """Console lines without their timestamp."""
    return [
        re.sub(r"^\d\d:\d\d:\d\d\.\d{3} \| ", "", line)
        for line in stderr.splitlines()
        if re.match(r"^\d\d:\d\d:\d\d\.\d{3} \| ", line)
    ]


@task
def ident(x: Any) -> Any:
    return x


@task
def fails() -> None:
    raise ValueError("Test")


# =================================================================================================
# Part 1: behaviours where actorflow differs from Prefect 3.9.1 (these fail until fixed)
# =================================================================================================


# -- what the caller of a flow receives ----------------------------------------------------------
def test_flow_returning_a_future_gives_the_caller_its_state() -> None:
    """tests/test_tasks.py::TestTaskSubmit::test_sync_task_submitted_inside_sync_flow."""

    @flow
    def bar() -> Any:
        future = ident.submit(1)
        assert isinstance(future, PrefectFuture)
        return future

    returned = bar()
    assert isinstance(returned, State)
    assert returned.is_completed() and returned.name == "Completed"
    assert returned.result() == 1
    flow_state = bar(return_state=True)
    assert flow_state.message == "All states completed."
    assert isinstance(flow_state.result(), State)


def test_flow_returning_a_task_state_gives_the_caller_the_state() -> None:
    """tests/test_tasks.py::TestTaskRun::test_sync_task_run_inside_sync_flow,
    TestTaskSubmit::test_sync_task_with_return_state_true."""

    @flow
    def called() -> Any:
        return ident(1, return_state=True)

    @flow
    def submitted() -> Any:
        state = ident.submit(1, return_state=True)
        assert isinstance(state, State)
        return state

    for fn in (called, submitted):
        returned = fn()
        assert isinstance(returned, State)
        assert returned.result() == 1


async def test_async_flow_returning_a_future_gives_the_caller_its_state(anyio_backend: str) -> None:
    """tests/test_tasks.py::TestTaskSubmit::test_async_task_submitted_inside_async_flow,
    TestTaskRun::test_async_task_run_inside_async_flow."""

    @task
    async def foo(x: int) -> int:
        return x

    @flow
    async def submitted() -> Any:
        return foo.submit(1)

    @flow
    async def called() -> Any:
        return await foo(1, return_state=True)

    for fn in (submitted, called):
        returned = await fn()
        assert isinstance(returned, State)
        assert await result_of(returned) == 1


def test_flow_returning_a_failed_task_state() -> None:
    """tests/test_flows.py::TestFlowCall::test_flow_state_reflects_returned_task_run_state."""

    @flow
    def foo() -> Any:
        return fails(return_state=True)

    flow_state = foo(return_state=True)
    assert flow_state.is_failed()
    assert flow_state.message == "1/1 states failed."
    task_state = flow_state.result(raise_on_failure=False)
    assert isinstance(task_state, State) and task_state.is_failed()
    with pytest.raises(ValueError, match=exact("Test")):
        task_state.result()
    with pytest.raises(ValueError, match=exact("Test")):
        foo()


def test_calling_a_flow_that_returned_failed_futures_gives_their_states() -> None:
    """tests/test_flows.py::TestFlowCall::test_flow_state_reflects_returned_multiple_task_run_states:
    calling the flow (without return_state) returns the states and does not raise."""

    @flow
    def bad() -> Any:
        return [ident.submit(1), fails.submit()]

    returned = bad()
    assert [s.name for s in returned] == ["Completed", "Failed"]
    assert returned[1].message == "Task run encountered an exception ValueError: Test"


def test_futures_nested_in_a_returned_dict_or_tuple_become_states() -> None:
    """tests/test_flows.py::TestFlowCall (returned futures are resolved to states at any depth)."""

    @flow
    def as_dict() -> Any:
        return {"a": ident.submit(1), "b": 2}

    @flow
    def as_tuple() -> Any:
        return ident.submit(1), 2

    returned = as_dict()
    assert isinstance(returned["a"], State) and returned["a"].result() == 1
    assert returned["b"] == 2
    first, second = as_tuple()
    assert isinstance(first, State) and second == 2


def test_subflow_returning_a_future_gives_the_parent_a_state() -> None:
    """tests/test_flows.py::TestSubflowCalls (a subflow's returned future reaches the parent as a
    state)."""

    @flow
    def child() -> Any:
        return ident.submit(1)

    @flow
    def parent() -> Any:
        returned = child()
        return isinstance(returned, State), returned.result()

    assert parent() == (True, 1)


# -- state arguments -----------------------------------------------------------------------------
def test_state_arguments_are_resolved_to_their_results() -> None:
    """tests/test_tasks.py::TestTaskInputs::test_task_inputs_populated_with_state_upstream,
    ::test_task_inputs_populated_with_state_upstream_wrapped_with_allow_failure,
    tests/test_flows.py::TestSubflowTaskInputs::test_subflow_with_one_upstream_task_state."""

    @task
    def kind(x: Any) -> str:
        return type(x).__name__

    @flow
    def child(x: Any) -> str:
        return type(x).__name__

    @flow
    def f() -> list[Any]:
        ok = ident(1, return_state=True)
        bad = fails(return_state=True)
        return [
            kind(ok),
            kind.submit(ok).result(),
            kind(allow_failure(bad)),
            child(ok),
            child(allow_failure(bad)),
        ]

    assert f() == ["int", "int", "ValueError", "int", "ValueError"]
    # outside a flow too
    state = ident(1, return_state=True)
    assert ident(state) == 1


# -- returned states and State construction ------------------------------------------------------
def test_state_can_be_built_from_a_type() -> None:
    """tests/test_flows.py::TestFlowCall::test_final_state_respects_returned_state (the
    State(type=..., message=..., data=...) constructor)."""
    completed = State(type=StateType.COMPLETED, message="m", data=5)  # type: ignore[call-arg]
    assert (completed.name, completed.message, completed.result()) == ("Completed", "m", 5)
    failed = State(type=StateType.FAILED)  # type: ignore[call-arg]
    assert failed.name == "Failed" and failed.message is None
    with pytest.raises(FailedRun, match=r"^Run failed\.$"):
        failed.result()


def test_flow_returning_a_constructed_state() -> None:
    """tests/test_flows.py::TestFlowCall::test_final_state_respects_returned_state."""

    @flow
    def foo() -> Any:
        return State(type=StateType.FAILED, message="Test returned state", data="hello!")  # type: ignore[call-arg]

    state = foo(return_state=True)
    assert state.is_failed() and state.message == "Test returned state"
    assert state.result(raise_on_failure=False) == "hello!"


def test_task_returning_a_constructed_state() -> None:
    """tests/test_tasks.py::TestTaskStates::test_final_task_state_respects_returned_state."""

    @task
    def bar() -> Any:
        return State(type=StateType.FAILED, message="Test returned state", data=True)  # type: ignore[call-arg]

    @flow
    def foo() -> Any:
        return quote(bar(return_state=True))

    task_state = foo().unquote()
    assert task_state.is_failed()
    assert task_state.result(raise_on_failure=False) is True
    assert task_state.message == "Test returned state"


def test_task_returning_failed_is_retried_like_an_exception() -> None:
    """tests/test_tasks.py::TestTaskStates (a returned Failed() goes through the retry logic)."""
    calls = []

    @task(retries=2)
    def bar() -> Any:
        calls.append(1)
        return Failed(message="nope")

    state = bar(return_state=True)
    assert len(calls) == 3
    assert state.is_failed() and state.message == "nope"
    assert state.result(raise_on_failure=False) is None
    with pytest.raises(FailedRun, match=exact("nope")):
        state.result()


def test_task_returning_pending_ends_pending() -> None:
    """tests/test_tasks.py::TestTaskStates (a non-final returned state becomes the run's state)."""

    @task
    def p() -> Any:
        return Pending()

    @flow
    def foo() -> Any:
        state = p(return_state=True)
        return quote(state)

    state = foo().unquote()
    assert state.name == "Pending" and state.is_pending()
    with pytest.raises(
        UnfinishedRun, match=r"^Run is in PENDING state, its result is not available\.$"
    ):
        state.result()


def test_flow_returning_cancelling_runs_cancellation_hooks() -> None:
    """tests/test_flows.py::TestFlowHooksOnCancellation::test_on_cancellation_hooks_run_on_cancelled_state,
    ::test_other_cancellation_hooks_run_if_one_hook_fails."""
    calls = []

    def hook(flow: Any, flow_run: Any, state: State[Any]) -> None:
        calls.append(state.type)

    def broken(flow: Any, flow_run: Any, state: State[Any]) -> None:
        raise Exception("Failing flow")

    @flow(on_cancellation=[hook, broken, hook])
    def my_flow() -> Any:
        return State(type=StateType.CANCELLING)  # type: ignore[call-arg]

    @flow(on_cancellation=[hook])
    def via_constructor() -> Any:
        return Cancelling()

    assert my_flow(return_state=True).name == "Cancelling"
    assert via_constructor(return_state=True).name == "Cancelling"
    assert calls == [StateType.CANCELLING] * 3


def test_subflow_returning_cancelling_fails_its_parent() -> None:
    """tests/test_flows.py::TestFlowHooksOnCancellation::test_on_cancelled_hook_on_subflow_succeeds."""
    calls = []

    @flow(on_cancellation=[lambda f, fr, s: calls.append("cancelled")])
    def subflow() -> Any:
        return Cancelling()

    @flow(on_failure=[lambda f, fr, s: calls.append("failed")])
    def my_flow() -> None:
        subflow()

    state = my_flow(return_state=True)
    assert state.message == (
        "Flow run encountered an exception: UnfinishedRun: Run is in CANCELLING state, its result "
        "is not available."
    )
    assert calls == ["cancelled", "failed"]


# -- state results in async code -----------------------------------------------------------------
async def test_state_result_is_awaitable_in_async_code(anyio_backend: str) -> None:
    """tests/test_tasks.py::TestTaskRun::test_async_task_run_inside_async_flow (`await
    state.result()`), prefect.client.schemas.objects.State.result (async_dispatch to aresult)."""

    @task
    async def foo(x: int) -> int:
        return x

    @flow
    async def bar() -> tuple[int, int]:
        state = await foo(1, return_state=True)
        return await state.result(), await state.aresult()  # type: ignore[misc, attr-defined]

    assert await bar() == (1, 1)


# -- blocking waits in async flows ---------------------------------------------------------------
async def test_blocking_waits_on_async_tasks_in_async_flows(anyio_backend: str) -> None:
    """tests/test_tasks.py::TestTaskFutures::test_wait_gets_final_state,
    ::test_result_returns_data_without_timeout, ::test_result_raises_exception_from_task,
    ::test_result_returns_exception_from_task_if_asked."""

    @task
    async def foo(x: int) -> int:
        if x < 0:
            raise ValueError("Test")
        return x

    @flow
    async def my_flow() -> list[Any]:
        future = foo.submit(1)
        assert future.wait() is None  # type: ignore[func-returns-value]
        bad = foo.submit(-1)
        with pytest.raises(ValueError, match=exact("Test")):
            bad.result()
        done, not_done = wait([foo.submit(2), foo.submit(3)])
        return [
            future.state.name,
            future.result(),
            foo.submit(1).result(timeout=5),
            isinstance(bad.result(raise_on_failure=False), ValueError),
            (len(done), len(not_done)),
            sorted(f.result() for f in as_completed([foo.submit(i) for i in range(3)])),
            foo.map([1, 2, 3]).result(),
        ]

    assert await my_flow() == ["Completed", 1, 1, True, (2, 0), [0, 1, 2], [1, 2, 3]]


async def test_blocking_result_timeout_in_async_flow(anyio_backend: str) -> None:
    """tests/test_tasks.py::TestTaskFutures::test_result_raises_with_timeout_exceeded,
    ::test_wait_returns_none_with_timeout_exceeded."""
    release = threading.Event()

    @task
    async def slow() -> int:
        await anyio.to_thread.run_sync(release.wait, 5)
        return 1

    @flow
    async def my_flow() -> None:
        future = slow.submit()
        future.wait(0.01)
        assert not future.state.is_completed()
        with pytest.raises(TimeoutError) as info:
            future.result(timeout=0.01)
        assert (
            str(info.value) == f"Task run {future.task_run_id} did not complete within 0.01 seconds"
        )
        release.set()

    await my_flow()


async def test_async_task_blocking_on_its_own_submitted_children(anyio_backend: str) -> None:
    """tests/test_tasks.py::TestNestedTasks::test_nested_submitted_async_task,
    ::test_nested_async_map, ::test_nested_async_wait_for."""

    @task
    async def inner(x: int) -> int:
        return x * 2

    @task
    async def outer_submit() -> int:
        return inner.submit(21).result()

    @task
    async def outer_map(xs: list[int]) -> int:
        return sum(f.result() for f in inner.map(xs))

    @flow
    async def my_flow() -> list[int]:
        f1 = inner.submit(2)
        f2 = outer_submit.submit(wait_for=[f1])
        return [await outer_submit(), await outer_map([1, 2, 3]), f2.result()]

    assert await my_flow() == [42, 12, 42]


# -- flow parameters -----------------------------------------------------------------------------
def test_flow_parameters_are_coerced_to_their_annotations() -> None:
    """tests/test_flows.py::TestFlowCall::test_call_coerces_parameter_types."""

    @flow
    def foo(x: int, y: list[int]) -> int:
        return x + sum(y)

    assert foo(x="1", y=["2", "3"]) == 6  # type: ignore[arg-type]


def test_flow_parameters_of_the_wrong_type_fail_the_run() -> None:
    """tests/test_flows.py::TestFlowCall::test_fails_but_does_not_raise_on_incompatible_parameter_types,
    TestFlowHooksOnFailure::test_on_failure_hooks_run_on_bad_parameters."""
    from actorflow.exceptions import ParameterTypeError  # type: ignore[attr-defined]

    calls = []

    @flow(on_failure=[lambda f, fr, s: calls.append("failure_hook")])
    def foo(x: int) -> None:
        pass

    message = (
        "Flow run received invalid parameters:\n"
        " - x: Input should be a valid integer, unable to parse string as an integer"
    )
    state = foo(x="foo", return_state=True)  # type: ignore[arg-type]
    assert state.is_failed()
    assert state.message == (
        f"Validation of flow parameters failed with error: ParameterTypeError: {message}"
    )
    with pytest.raises(ParameterTypeError) as info:
        state.result()
    assert str(info.value) == message
    assert calls == ["failure_hook"]


def test_flow_binding_error_raises_even_with_return_state() -> None:
    """tests/test_flows.py::TestFlowCall (arguments that do not bind raise at the call, whether or
    not return_state=True is given)."""

    @flow
    def foo(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ParameterBindError) as info:
        foo(1, return_state=True)  # type: ignore[call-arg]
    assert str(info.value) == (
        "Error binding parameters for function 'foo': missing a required argument: 'y'.\n"
        "Function 'foo' has signature 'x, y' but received args: (1,) and kwargs: []."
    )


def test_subflow_with_invalid_parameters_fails_the_parent() -> None:
    """tests/test_flows.py::TestSubflowCalls::test_subflow_with_invalid_parameters_is_failed,
    ::test_subflow_with_invalid_parameters_fails_parent,
    ::test_subflow_with_invalid_parameters_is_not_failed_without_validation."""

    @flow
    def child(x: int) -> int:
        return x

    @flow(validate_parameters=False)
    def lenient(x: int) -> int:
        return x

    @flow
    def parent() -> Any:
        return child("foo", return_state=True), child(1, return_state=True)  # type: ignore[arg-type]

    @flow
    def parent_lenient() -> Any:
        return lenient("foo")  # type: ignore[arg-type]

    state = parent(return_state=True)
    assert state.is_failed() and state.message == "1/2 states failed."
    assert parent_lenient() == "foo"


def test_flow_reserved_argument_names() -> None:
    """tests/test_tasks.py::TestSubflowWaitForTasks::test_using_wait_for_in_task_definition_raises_reserved,
    tests/test_flows.py::TestFlow::test_using_return_state_in_flow_definition_raises_reserved."""
    with pytest.raises(ReservedArgumentError, match="'wait_for' is a reserved argument name"):

        @flow
        def foo(wait_for: Any) -> None:
            pass

    with pytest.raises(
        ReservedArgumentError,
        match=exact("'return_state' is a reserved argument name and cannot be used."),
    ):
        Flow(name="test", fn=lambda return_state: 42)


# -- futures depending on themselves ---------------------------------------------------------------
def test_task_depending_on_itself_raises_instead_of_deadlocking() -> None:
    """tests/test_tasks.py::TestTaskSubmit::test_raises_if_depends_on_itself."""

    @task
    def say_hello(name: str) -> str:
        return f"Hello {name}!"

    @flow
    def my_flow() -> None:
        greeting_queue: list[Any] = []
        for i in range(3):
            wait_for = greeting_queue if greeting_queue else []
            future = say_hello.submit(name=f"Person {i}", wait_for=wait_for)
            greeting_queue.append(future)
        for fut in greeting_queue:
            fut.result()

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            my_flow()
        except BaseException as exc:  # the outcome, whatever it is, is what the test looks at
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)  # a deadlocked flow must not hang the suite
    thread.start()
    thread.join(5)
    assert outcome, "the flow deadlocked on a task that waits for itself"
    assert isinstance(outcome[0], ValueError)
    assert str(outcome[0]) == (
        "Discovered a task depending on itself. Raising to avoid a deadlock. Please inspect the "
        "inputs and dependencies of say_hello."
    )


def test_map_with_allow_failure_static_upstream() -> None:
    """tests/test_tasks.py::TestTaskSubmit::test_allow_failure_mapped_with_noniterable_upstream."""

    @task
    def pair(y: int, z: Any) -> tuple[int, Any]:
        return y, z

    @flow
    def test_flow() -> list[Any]:
        f = fails.submit()
        return pair.map([1, 2, 3], allow_failure(f)).result()

    results = test_flow()
    assert [y for y, _ in results] == [1, 2, 3]
    assert all(isinstance(z, ValueError) and str(z) == "Test" for _, z in results)


# -- methods --------------------------------------------------------------------------------------
def test_flow_on_instance_methods() -> None:
    """tests/test_flows.py::TestFlowCall::test_flow_supports_instance_methods."""

    class Foo:
        def __init__(self, x: int) -> None:
            self.x = x

        @flow
        def instance_method(self) -> int:
            return self.x

    assert Foo(5).instance_method() == 5
    assert Foo(1).instance_method() == 1
    assert isinstance(Foo(10).instance_method, Flow)


async def test_async_flow_on_instance_methods(anyio_backend: str) -> None:
    """tests/test_flows.py::TestFlowCall::test_flow_supports_async_instance_methods."""

    class Foo:
        def __init__(self, x: int) -> None:
            self.x = x

        @flow
        async def instance_method(self) -> int:
            return self.x

    assert await Foo(5).instance_method() == 5


def test_task_and_flow_on_top_of_classmethod_and_staticmethod() -> None:
    """tests/test_tasks.py::TestTaskCall::test_error_message_if_decorate_classmethod,
    tests/test_flows.py::TestFlowCall::test_error_message_if_decorate_classmethod: Prefect 3.9.1
    accepts these decorator orders (its older tests expected a TypeError)."""

    class Foo:
        @task  # type: ignore[arg-type]
        @classmethod
        def t_cls(cls) -> str:
            return cls.__name__

        @task  # type: ignore[arg-type]
        @staticmethod
        def t_static() -> str:
            return "static"

        @flow  # type: ignore[arg-type]
        @classmethod
        def f_cls(cls) -> str:
            return cls.__name__

        @flow  # type: ignore[arg-type]
        @staticmethod
        def f_static() -> int:
            return 1

    assert isinstance(Foo.t_cls, Task)
    assert (Foo.t_cls(), Foo.t_static(), Foo.f_cls(), Foo.f_static()) == ("Foo", "static", "Foo", 1)


# -- public module paths ---------------------------------------------------------------------------
def test_prefect_module_paths_exist() -> None:
    """Imports used throughout tests/test_tasks.py, tests/test_flows.py and
    tests/test_task_engine.py."""
    from actorflow.context import (  # type: ignore[import-not-found]
        FlowRunContext,
        TaskRunContext,
        get_run_context,
    )
    from actorflow.flows import Flow as FlowFromFlows  # type: ignore[import-not-found]
    from actorflow.flows import flow as flow_from_flows
    from actorflow.logging import get_logger  # type: ignore[import-not-found]
    from actorflow.logging import get_run_logger as logger_from_logging
    from actorflow.runtime import flow_run, task_run  # type: ignore[import-not-found]
    from actorflow.tasks import (  # type: ignore[import-not-found]
        Task as TaskFromTasks,
    )
    from actorflow.tasks import (
        exponential_backoff,
        task_input_hash,
    )
    from actorflow.tasks import task as task_from_tasks
    from actorflow.utilities.annotations import (  # type: ignore[import-not-found]
        allow_failure as allow_failure_from_annotations,
    )
    from actorflow.utilities.annotations import quote as quote_from_annotations
    from actorflow.utilities.annotations import unmapped as unmapped_from_annotations

    assert (task_from_tasks, TaskFromTasks, flow_from_flows, FlowFromFlows) == (
        task,
        Task,
        flow,
        Flow,
    )
    assert logger_from_logging is get_run_logger and callable(get_logger)
    assert (allow_failure_from_annotations, quote_from_annotations, unmapped_from_annotations) == (
        allow_failure,
        quote,
        unmapped,
    )
    assert exponential_backoff(backoff_factor=10)(3) == [10, 20, 40]
    assert callable(task_input_hash) and callable(get_run_context)
    assert TaskRunContext.get() is None and FlowRunContext.get() is None
    assert flow_run.id is None and task_run.id is None


def test_prefect_exception_names_exist() -> None:
    """tests/test_flows.py imports ParameterTypeError and InvalidNameError from
    prefect.exceptions."""
    from actorflow import exceptions

    assert issubclass(exceptions.ParameterTypeError, Exception)  # type: ignore[attr-defined]
    assert issubclass(exceptions.InvalidNameError, ValueError)  # type: ignore[attr-defined]
    with pytest.raises(exceptions.InvalidNameError):  # type: ignore[attr-defined]
        Flow(fn=lambda: 1, name="my/flow")


# -- run context and prefect.runtime --------------------------------------------------------------
def test_run_context_outside_runs() -> None:
    """tests/test_task_engine.py (TaskRunContext.get() outside a run), prefect.context docs."""
    from actorflow.context import (  # type: ignore[import-not-found]
        FlowRunContext,
        TaskRunContext,
        get_run_context,
    )

    with pytest.raises(MissingContextError) as info:
        get_run_context()
    assert str(info.value) == "No run context available. You are not in a flow or task run context."
    assert TaskRunContext.get() is None
    assert FlowRunContext.get() is None


def test_run_context_inside_flows_and_tasks() -> None:
    """tests/test_task_engine.py::TestTaskRunsSync::test_flow_run_id_is_set, ::test_task_run_name,
    tests/test_tasks.py::TestTaskRetries::test_task_retries_receive_latest_task_run_in_context."""
    from actorflow.context import (  # type: ignore[import-not-found]
        FlowRunContext,
        TaskRunContext,
        get_run_context,
    )

    seen: dict[str, Any] = {}

    @task(task_run_name="tr-{x}", tags=["t1"])
    def foo(x: int) -> int:
        ctx = get_run_context()
        tr = TaskRunContext.get()
        fr = FlowRunContext.get()
        seen["task"] = (
            ctx is tr,
            tr.task_run.name,
            tr.task_run.flow_run_id == fr.flow_run.id,
            tr.task_run.run_count,
            sorted(tr.task_run.tags),
            tr.parameters,
            tr.task is foo,
            tr.task_run.state_name,
        )
        return x

    @flow(flow_run_name="fr-{y}")
    def bar(y: int) -> int:
        ctx = get_run_context()
        seen["flow"] = (
            isinstance(ctx, FlowRunContext),
            ctx.flow_run.name,
            ctx.flow.name,
            ctx.flow_run.parameters,
            ctx.parameters,
            TaskRunContext.get(),
            ctx.flow_run.run_count,
        )
        return foo(2)

    assert bar(5) == 2
    assert seen["flow"] == (True, "fr-5", "bar", {"y": 5}, {"y": 5}, None, 1)
    assert seen["task"] == (True, "tr-2", True, 1, ["t1"], {"x": 2}, True, "Running")


def test_run_context_state_names_across_retries() -> None:
    """tests/test_tasks.py::TestTaskRetries::test_task_retries_receive_latest_task_run_in_context."""
    from actorflow.context import TaskRunContext  # type: ignore[import-not-found]

    names, counts = [], []

    @task(retries=3)
    def flaky() -> None:
        ctx = TaskRunContext.get()
        names.append(ctx.task_run.state_name)
        counts.append(ctx.task_run.run_count)
        raise ValueError()

    @flow
    def test_flow() -> None:
        flaky()

    with pytest.raises(ValueError):
        test_flow()
    assert names == ["Running", "Retrying", "Retrying", "Retrying"]
    assert counts == [1, 2, 3, 4]


def test_runtime_inside_and_outside_runs() -> None:
    """tests/test_tasks.py::test_task_run_name_is_set_with_function_using_runtime_context,
    tests/test_flows.py::TestFlowRunName::test_sets_run_name_with_function_using_runtime_context."""
    from actorflow import runtime  # type: ignore[attr-defined]

    seen: dict[str, Any] = {}

    def task_name() -> str:
        params = runtime.task_run.parameters
        return f"{params['x']}-wuz-{params['where']}"

    @task(task_run_name=task_name, tags=["a"])
    def t(x: int, where: str = "here") -> int:
        tr = runtime.task_run
        seen["task"] = (tr.name, tr.task_name, tr.parameters, tr.run_count, sorted(tr.tags))
        seen["flow_from_task"] = (runtime.flow_run.flow_name, runtime.flow_run.parameters)
        return x

    @flow(flow_run_name="rf")
    def f(y: int) -> int:
        fr = runtime.flow_run
        seen["flow"] = (fr.name, fr.flow_name, fr.parameters, fr.run_count, isinstance(fr.id, str))
        seen["task_from_flow"] = runtime.task_run.id
        return t(y)

    assert f(4) == 4
    assert seen["flow"] == ("rf", "f", {"y": 4}, 1, True)
    assert seen["task"] == ("4-wuz-here", "t", {"x": 4, "where": "here"}, 1, ["a"])
    assert seen["flow_from_task"] == ("f", {"y": 4})
    assert seen["task_from_flow"] is None
    assert (runtime.flow_run.id, runtime.flow_run.name, runtime.flow_run.parameters) == (
        None,
        None,
        {},
    )
    assert (runtime.task_run.id, runtime.task_run.parameters, runtime.task_run.run_count) == (
        None,
        {},
        0,
    )


def test_hook_run_objects_carry_prefect_fields() -> None:
    """tests/test_tasks.py hooks (task_run.flow_run_id, task_run.state_name), tests/test_flows.py
    TestFlowRunTags (flow_run.tags)."""
    seen: list[Any] = []

    def task_hook(task: Any, task_run: Any, state: State[Any]) -> None:
        seen.append((task_run.flow_run_id is not None, task_run.state_name))

    def flow_hook(flow: Any, flow_run: Any, state: State[Any]) -> None:
        seen.append((flow.name, sorted(flow_run.tags)))

    @task(on_completion=[task_hook])
    def t() -> None:
        pass

    @flow(on_completion=[flow_hook])
    def child() -> None:
        t()

    @flow(on_completion=[flow_hook])
    def parent() -> None:
        with tags("c", "d"):
            child()

    with tags("a", "b"):
        parent()
    assert seen == [(True, "Completed"), ("child", ["a", "b", "c", "d"]), ("parent", ["a", "b"])]


def test_cache_key_fn_context_has_the_flow_run_id() -> None:
    """tests/test_tasks.py::TestTaskCaching::test_cache_key_fn_receives_context."""

    def per_flow_run(context: Any, args: dict[str, Any]) -> str:
        return f"fr-{context.task_run.flow_run_id}"

    @task(cache_key_fn=per_flow_run, persist_result=True)
    def foo(x: str) -> str:
        return x

    @flow
    def bar() -> list[Any]:
        a = foo("something", return_state=True)
        b = foo("different", return_state=True)
        return [a.name, b.name, b.result()]

    assert bar() == ["Completed", "Cached", "something"]
    assert bar() == ["Completed", "Cached", "something"]


# -- logging --------------------------------------------------------------------------------------
def test_engine_logs_run_lifecycle(root_records: Records) -> None:
    """Prefect's engine log records (seen on the console as `Flow run 'x' - ...`)."""

    @task(task_run_name="my-task")
    def t() -> int:
        return 1

    @task(task_run_name="bad-task")
    def bad() -> None:
        raise ValueError("boom")

    @flow(flow_run_name="my-run")
    def my_flow() -> int:
        t()
        bad(return_state=True)
        return 2

    my_flow()
    assert root_records.run_lines() == [
        ("actorflow.flow_runs", "INFO", "Beginning flow run 'my-run' for flow 'my-flow'"),
        ("actorflow.task_runs", "INFO", "Finished in state Completed()"),
        ("actorflow.task_runs", "ERROR", "Task run failed with exception: ValueError('boom')"),
        (
            "actorflow.task_runs",
            "ERROR",
            "Finished in state Failed('Task run encountered an exception ValueError: boom')",
        ),
        ("actorflow.flow_runs", "INFO", "Finished in state Completed()"),
    ]


def test_engine_logs_failures_and_retries(root_records: Records) -> None:
    """Prefect's engine log records for a retried task and a failed flow."""
    attempts = []

    @task(retries=1, task_run_name="flaky")
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first")
        return 1

    @flow(flow_run_name="bad-run")
    def my_flow() -> None:
        flaky()
        raise RuntimeError("nope")

    my_flow(return_state=True)
    assert root_records.run_lines() == [
        ("actorflow.flow_runs", "INFO", "Beginning flow run 'bad-run' for flow 'my-flow'"),
        (
            "actorflow.task_runs",
            "INFO",
            "Task run failed with exception: ValueError('first') - "
            "Retry 1/1 will start immediately",
        ),
        ("actorflow.task_runs", "INFO", "Finished in state Completed()"),
        (
            "actorflow.flow_runs",
            "ERROR",
            "Encountered exception during execution: RuntimeError('nope')",
        ),
        (
            "actorflow.flow_runs",
            "INFO",
            "Finished in state Failed('Flow run encountered an exception: RuntimeError: nope')",
        ),
    ]


def test_run_logger_records_carry_plain_messages_and_run_fields(root_records: Records) -> None:
    """tests/test_task_engine.py::TestTaskRunsSync::test_get_run_logger."""

    @task(task_run_name="test-run")
    def my_log_task() -> None:
        get_run_logger().critical("hey yall")

    @flow(flow_run_name="my-run")
    def my_flow() -> None:
        get_run_logger().warning("hello %s", "world")
        my_log_task()

    my_flow()
    task_record = next(r for r in root_records.records if "hey yall" in r.getMessage())
    assert task_record.getMessage() == "hey yall"
    assert (task_record.task_name, task_record.task_run_name) == ("my_log_task", "test-run")  # type: ignore[attr-defined]
    assert uuid.UUID(task_record.task_run_id)  # type: ignore[attr-defined]
    flow_record = next(r for r in root_records.records if "hello" in r.getMessage())
    assert flow_record.getMessage() == "hello world"
    assert (flow_record.flow_run_name, flow_record.flow_name) == ("my-run", "my-flow")  # type: ignore[attr-defined]
    assert uuid.UUID(flow_record.flow_run_id)  # type: ignore[attr-defined]


def test_info_logs_and_prints_reach_an_application_root_handler(root_records: Records) -> None:
    """log_prints and get_run_logger().info() with logging configured by the application
    (`logging.basicConfig()` leaves the root logger at WARNING): Prefect's loggers are at INFO."""

    @task(log_prints=True)
    def t() -> None:
        print("from task", 1)

    @task
    def inherits() -> None:
        print("inherited")

    @flow(log_prints=True)
    def f() -> None:
        print("from flow")
        get_run_logger().info("info line")
        t()
        inherits()

    f()
    lines = [
        (r.name, r.levelname, r.getMessage())
        for r in root_records.records
        if r.name in ("actorflow.flow_runs", "actorflow.task_runs")
        and "state" not in r.getMessage()
        and "Beginning" not in r.getMessage()
    ]
    assert lines == [
        ("actorflow.flow_runs", "INFO", "from flow"),
        ("actorflow.flow_runs", "INFO", "info line"),
        ("actorflow.task_runs", "INFO", "from task 1"),
        ("actorflow.task_runs", "INFO", "inherited"),
    ]


def test_get_run_logger_outside_a_run_message() -> None:
    """prefect.logging.get_run_logger outside a run."""
    with pytest.raises(MissingContextError) as info:
        get_run_logger()
    assert str(info.value) == "There is no active flow or task run context."


def test_console_lines_of_a_script(tmp_path: Path) -> None:
    """Console of a script (Prefect 3.9.1): engine lines in Prefect's format, and
    `logging.basicConfig()` after a run adds no second copy of each line.

    Prefect keeps printing through its own handler after `basicConfig()`; actorflow never
    configures the root logger, so once the application has a handler its lines go there, in the
    application's format, and the fallback console is silent (README, "Differences from
    Prefect")."""
    result = run_script(
        tmp_path,
        """
        import logging

        from actorflow import flow, task


        @task(log_prints=True)
        def shout(x):
            print(f"task says {x}")


        @flow(log_prints=True, flow_run_name="printer")
        def printer():
            print("flow says hi")
            shout(1)


        if __name__ == "__main__":
            printer()
            logging.basicConfig(level=logging.INFO)
            printer()
        """,
    )
    assert result.returncode == 0, result.stderr
    once = [
        "INFO    | Flow run 'printer' - Beginning flow run 'printer' for flow 'printer'",
        "INFO    | Flow run 'printer' - flow says hi",
        "INFO    | Task run 'shout-<id>' - task says 1",
        "INFO    | Task run 'shout-<id>' - Finished in state Completed()",
        "INFO    | Flow run 'printer' - Finished in state Completed()",
    ]
    lines = [
        re.sub(r"'shout-[0-9a-f]{3}'", "'shout-<id>'", line) for line in console(result.stderr)
    ]
    assert lines == once
    application = [
        line for line in result.stderr.splitlines() if line.startswith("INFO:actorflow.")
    ]
    assert application == [
        "INFO:actorflow.flow_runs:Beginning flow run 'printer' for flow 'printer'",
        "INFO:actorflow.flow_runs:flow says hi",
        "INFO:actorflow.task_runs:task says 1",
        "INFO:actorflow.task_runs:Finished in state Completed()",
        "INFO:actorflow.flow_runs:Finished in state Completed()",
    ]
    assert result.stderr.count("flow says hi") == 2


# -- caching and persistence options -------------------------------------------------------------
def test_task_cache_policy_attribute() -> None:
    """tests/test_tasks.py::TestCachePolicies::test_cache_policy_init_to_none_when_not_persisting_results,
    ::test_cache_policy_init_to_default_when_persisting_results,
    ::test_cache_policy_init_to_none_if_result_storage_key,
    TestTaskCaching::test_warns_went_false_persist_result_and_cache_policy."""
    assert task(lambda: None).cache_policy is DEFAULT
    assert task(persist_result=True)(lambda: None).cache_policy is DEFAULT
    assert task(persist_result=False)(lambda: None).cache_policy is NO_CACHE
    assert task(persist_result=False, cache_policy=INPUTS)(lambda: None).cache_policy is NO_CACHE
    assert task(result_storage_key="foo", persist_result=True)(lambda: None).cache_policy is None
    assert type(task(cache_key_fn=lambda *a: "x")(lambda: None).cache_policy).__name__ == (
        "CacheKeyFnPolicy"
    )


def test_persist_result_is_inferred_on_the_task_and_flow() -> None:
    """tests/test_tasks.py::TestResultPersistence::test_setting_cache_key_fn_sets_persist_result_to_true,
    ::test_setting_result_serializer_sets_persist_result_to_true,
    ::test_setting_result_storage_key_sets_persist_result_to_true,
    ::test_setting_cache_policy_sets_persist_result_to_true,
    tests/test_flows.py::TestResultPersistence::test_setting_result_serializer_sets_persist_result_to_true."""
    for options in (
        {"cache_key_fn": lambda *_: "k"},
        {"result_serializer": "json"},
        {"result_storage_key": "k"},
        {"cache_policy": INPUTS},
        {"cache_policy": TASK_SOURCE + INPUTS},
    ):
        assert task(**options)(lambda: None).persist_result is True, options
        assert ident.with_options(**options).persist_result is True, options
    assert task(cache_policy=NO_CACHE)(lambda: None).persist_result is None
    assert flow(result_serializer="json")(lambda: None).persist_result is True


def test_cache_hit_state_has_no_message() -> None:
    """tests/test_tasks.py::TestTaskCaching::test_repeated_task_call_within_flow_is_cached_by_default."""

    @task(persist_result=True)
    def foo(x: int) -> int:
        return x

    @flow
    def bar() -> Any:
        return quote((foo(1, return_state=True), foo(1, return_state=True)))

    first, second = bar().unquote()
    assert (first.name, second.name) == ("Completed", "Cached")
    assert second.message is None


def test_task_source_key_follows_a_replaced_function() -> None:
    """tests/test_tasks.py::TestCacheFunctionBuiltins::test_task_input_hash_depends_on_task_key_and_code."""
    from actorflow.cache_policies import task_input_hash

    salt = key()

    @task(cache_key_fn=task_input_hash, persist_result=True)
    def foo(x: int, s: str) -> int:
        return x

    def foo_new_code(x: int, s: str) -> int:
        return x + 1

    @flow
    def my_flow() -> Any:
        first = foo(1, salt, return_state=True)
        foo.fn = foo_new_code
        second = foo(1, salt, return_state=True)
        return quote((first, second))

    first, second = my_flow().unquote()
    assert (first.name, second.name) == ("Completed", "Completed")
    assert second.result() == 2


def test_cache_policy_configure_key_storage(tmp_path: Path) -> None:
    """tests/test_tasks.py::TestTaskCaching::test_cache_policy_storage_path.

    Prefect names the record by the policy's key alone; actorflow scopes it to the task's
    identity (README, "Differences from Prefect"), so the test checks that the record is kept in
    ``key_storage`` and is hit from there."""
    from actorflow.cache_policies import Inputs

    policy = Inputs().configure(key_storage=tmp_path)
    calls: list[int] = []

    @task(cache_policy=policy)
    def foo(x: int) -> int:
        calls.append(x)
        return x

    assert foo(1) == 1
    assert [p.name for p in tmp_path.iterdir()] != []
    assert foo(1) == 1 and calls == [1]


def test_result_serialization_error_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """tests/test_tasks.py::TestResultPersistence::test_logs_warning_on_serialization_error."""

    def fn() -> int:
        return 1

    @task(result_serializer="json")
    def my_task() -> Any:
        return fn

    assert my_task() is fn
    record = next(
        r for r in caplog.records if "Encountered an error while serializing result" in r.message
    )
    assert record.levelname == "WARNING"


# -- timeouts -------------------------------------------------------------------------------------
def test_flow_timeout_exception_message() -> None:
    """tests/test_flows.py::TestFlowTimeouts::test_flows_fail_with_timeout (the raised
    exception)."""
    from actorflow.exceptions import FlowRunTimeoutError

    @flow(timeout_seconds=0.05)
    def my_flow() -> None:
        time.sleep(0.3)

    state = my_flow(return_state=True)
    assert state.name == "TimedOut"
    assert state.message == "Flow run exceeded timeout of 0.05 second(s)"
    with pytest.raises(FlowRunTimeoutError, match=r"^Scope timed out after 0\.05 second\(s\)\.$"):
        state.result()


def test_user_timeout_error_in_a_flow_is_timed_out() -> None:
    """tests/test_flows.py::TestFlowTimeouts::test_user_timeout_is_not_hidden (the state Prefect
    3.9.1 gives)."""

    @flow(timeout_seconds=30)
    def my_flow() -> None:
        raise TimeoutError("Oh no!")

    state = my_flow(return_state=True)
    assert state.name == "TimedOut" and state.is_failed()
    assert state.message == "Flow run failed due to timeout: TimeoutError('Oh no!')"
    with pytest.raises(TimeoutError, match=exact("Oh no!")):
        state.result()


# -- generator tasks ------------------------------------------------------------------------------
def test_generator_tasks_retry_and_time_out() -> None:
    """tests/test_task_engine.py::TestGenerators::test_generator_retries, ::test_generator_timeout,
    ::test_generator_task_requires_return_type_result."""

    @task(retries=2)
    def g() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError()

    values: list[int] = []
    with pytest.raises(ValueError):
        for v in g():
            values.append(v)
    assert values == [1, 2, 1, 2, 1, 2]

    @task(timeout_seconds=0.1)
    def slow() -> Iterator[int]:
        yield 1
        time.sleep(0.5)
        yield 2

    values = []
    with pytest.raises(TimeoutError):
        for v in slow():
            values.append(v)
    assert values == [1]

    @task
    def one() -> Iterator[int]:
        yield 1

    with pytest.raises(
        ValueError, match=exact("The return_type for a generator task must be 'result'")
    ):
        list(one(return_state=True))


async def test_async_generator_tasks_retry_and_time_out(anyio_backend: str) -> None:
    """tests/test_task_engine.py::TestAsyncGenerators::test_generator_retries,
    ::test_generator_timeout_with_async_sleep."""

    @task(retries=2)
    async def g() -> Any:
        yield 1
        raise ValueError("xyz")

    values: list[int] = []
    with pytest.raises(ValueError, match="xyz"):
        async for v in g():
            values.append(v)
    assert values == [1, 1, 1]

    @task(timeout_seconds=0.1)
    async def slow() -> Any:
        yield 1
        await anyio.sleep(2)
        yield 2

    values = []
    with pytest.raises(TimeoutError):
        async for v in slow():
            values.append(v)
    assert values == [1]


# -- flow retries, hooks and run names -----------------------------------------------------------
def test_parent_retry_reuses_a_completed_persisted_subflow() -> None:
    """tests/test_flows.py::TestFlowRetries::test_flow_retry_with_error_in_flow_and_one_successful_child_flow."""
    counts = {"child": 0, "parent": 0}

    @flow(persist_result=True)
    def child_flow() -> str:
        counts["child"] += 1
        return "hello"

    @flow(retries=1, persist_result=True)
    def parent_flow() -> str:
        counts["parent"] += 1
        result = child_flow()
        if counts["parent"] == 1:
            raise ValueError()
        return result

    assert parent_flow() == "hello"
    assert counts == {"child": 1, "parent": 2}


def test_flow_on_crashed_hooks_run_on_base_exceptions() -> None:
    """tests/test_flows.py::TestFlowHooksOnCrashed (a KeyboardInterrupt in the body crashes the
    run)."""
    calls = []

    @flow(
        on_crashed=[lambda f, fr, s: calls.append(s.type)],
        on_failure=[lambda f, fr, s: calls.append("failed")],
    )
    def my_flow() -> None:
        raise KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt):
        my_flow()
    assert calls == [StateType.CRASHED]


def test_flow_run_name_is_computed_once_per_run_and_checked() -> None:
    """tests/test_flows.py::TestFlowRunName::test_sets_run_name_once,
    ::test_invalid_runtime_run_name,
    ::test_sets_run_name_with_function_not_returning_string."""
    calls = []

    def name() -> str:
        calls.append(1)
        return "some-string"

    @flow(flow_run_name=name, retries=3)
    def failing() -> None:
        raise RuntimeError("some-error")

    assert failing(return_state=True).is_failed()
    assert len(calls) == 1

    class InvalidFlowRunNameArg:
        def format(*args: Any, **kwargs: Any) -> None:
            pass

    @flow
    def my_flow() -> None:
        pass

    # Prefect raises at the next call; actorflow checks options where they are set, so the
    # assignment raises, with Prefect's message.
    with pytest.raises(
        TypeError,
        match=exact(
            "Expected string or callable for 'flow_run_name'; got InvalidFlowRunNameArg instead."
        ),
    ):
        my_flow.flow_run_name = InvalidFlowRunNameArg()  # type: ignore[assignment]
    my_flow()  # the flow is unchanged

    def returns_none() -> None:
        return None

    @flow(flow_run_name=returns_none)  # type: ignore[arg-type]
    def unnamed() -> None:
        pass

    with pytest.raises(
        TypeError, match="for 'flow_run_name' returned type NoneType but a string is"
    ):
        unnamed()


# -- futures: wait / as_completed / lists ---------------------------------------------------------
def test_wait_and_as_completed_reject_negative_timeouts() -> None:
    """prefect.futures.wait / as_completed with a negative timeout."""

    @flow
    def my_flow() -> None:
        futures = [ident.submit(1)]
        with pytest.raises(
            ValueError, match=exact("'timeout' must be a non-negative number, got -1")
        ):
            wait(futures, timeout=-1)
        with pytest.raises(
            ValueError, match=exact("'timeout' must be a non-negative number, got -1")
        ):
            list(as_completed(futures, timeout=-1))

    my_flow()


def test_as_completed_timeout_message() -> None:
    """tests/test_futures.py::TestUtilityFunctions::test_as_completed_timeout."""
    release = threading.Event()

    @task
    def blocked() -> None:
        release.wait(5)

    @flow
    def my_flow() -> None:
        futures = [blocked.submit(), blocked.submit(), ident.submit(0)]
        try:
            with pytest.raises(TimeoutError) as info:
                for _ in as_completed(futures, timeout=0.1):
                    pass
            assert info.value.args[0] == "2 (of 3) futures unfinished"
        finally:
            release.set()

    my_flow()


def test_future_list_result_timeout_message() -> None:
    """tests/test_futures.py::TestPrefectFutureList::test_results_with_timeout."""
    release = threading.Event()

    @task
    def blocked() -> None:
        release.wait(5)

    @flow
    def my_flow() -> None:
        futures = PrefectFutureList([ident.submit(1), blocked.submit()])
        try:
            with pytest.raises(TimeoutError) as info:
                futures.result(timeout=0.05)
            assert str(info.value) == (
                "Timed out waiting for all futures to complete within 0.05 seconds"
            )
        finally:
            release.set()

    my_flow()


# -- messages and attributes ---------------------------------------------------------------------
def test_map_error_messages() -> None:
    """tests/test_tasks.py::TestTaskMap::test_missing_iterable_argument,
    ::test_mismatching_input_lengths (messages)."""

    @task
    def add(x: int, y: int) -> int:
        return x + y

    @flow
    def missing() -> Any:
        return add.map(5, 6)

    @flow
    def mismatch() -> Any:
        return add.map([1, 2, 3], [4, 5, 6, 7])

    with pytest.raises(MappingMissingIterable) as info:
        missing()
    assert str(info.value) == (
        "No iterable parameters were received. Parameters for map must include at least one "
        "iterable. Parameters: {'x': 5, 'y': 6}"
    )
    with pytest.raises(MappingLengthMismatch) as info2:
        mismatch()
    assert str(info2.value) == (
        "Received iterable parameters with different lengths. Parameters for map must all be the "
        "same length. Got lengths: {'x': 3, 'y': 4}"
    )


def test_flow_definition_error_messages() -> None:
    """tests/test_flows.py::TestFlow::test_invalid_name, ::test_raises_on_bad_funcs,
    TestFlowWithOptions::test_flow_name_non_string_raises (exact messages)."""

    def get_flow_run_name() -> str:
        return "x"

    with pytest.raises(ValueError) as info:
        Flow(fn=lambda: 1, name="my/flow")
    assert str(info.value) == (
        "Name 'my/flow' contains an invalid character. Must not contain any of: "
        "['/', '%', '&', '>', '<']."
    )
    with pytest.raises(TypeError, match=exact("'fn' must be callable")):
        Flow(name="test", fn={})  # type: ignore[arg-type]
    with pytest.raises(TypeError) as info2:
        Flow(name=1, fn=lambda: 42)  # type: ignore[arg-type]
    assert str(info2.value) == "Expected string for flow parameter 'name'; got int instead. "
    with pytest.raises(TypeError) as info3:
        Flow(name=get_flow_run_name, fn=lambda: 42)  # type: ignore[arg-type]
    assert str(info3.value) == (
        "Expected string for flow parameter 'name'; got function instead. Perhaps you meant to "
        "call it? e.g. '@flow(name=get_flow_run_name())'"
    )


def test_retry_option_error_messages() -> None:
    """tests/test_tasks.py::TestTaskConstructorValidation (exact messages)."""
    with pytest.raises(
        ValueError, match=r"^Can not configure more than 50 retry delays per task\.$"
    ):
        task(retries=42, retry_delay_seconds=list(range(51)))(lambda: None)
    with pytest.raises(ValueError, match=r"^`retry_jitter_factor` must be >= 0\.$"):
        task(retries=42, retry_delay_seconds=100, retry_jitter_factor=-10)(lambda: None)


def test_state_and_state_type_reprs() -> None:
    """prefect.states: repr of states and StateType; StateType compares equal to its value."""
    assert repr(StateType.COMPLETED) == "StateType.COMPLETED"
    assert StateType.COMPLETED == "COMPLETED"
    assert repr(Completed()) == "Completed(message=None, type=COMPLETED, result=None)"
    from actorflow import states

    assert states.Suspended().type is StateType.PAUSED  # type: ignore[attr-defined]
    assert states.AwaitingConcurrencySlot().type is StateType.SCHEDULED  # type: ignore[attr-defined]


def test_task_and_flow_attributes() -> None:
    """tests/test_tasks.py::TestTaskWithOptions::test_tags_are_copied_from_original_task,
    ::test_with_options_can_unset_result_options_with_none,
    tests/test_flows.py::TestFlowWithOptions,
    TestFlow::test_initializes_with_default_version (attributes scripts read)."""

    @task(tags=["tag1", "tag2"], refresh_cache=True)
    def t() -> None:
        pass

    copy = t.with_options(name="copy", refresh_cache=None)
    t.tags.add("tag3")  # type: ignore[attr-defined]
    assert t.tags == {"tag1", "tag2", "tag3"} and copy.tags == {"tag1", "tag2"}
    assert copy.refresh_cache is None
    assert t.retry_delay_seconds == 0 and t.isasync is False  # type: ignore[attr-defined]

    def failure_hook(flow: Any, flow_run: Any, state: State[Any]) -> None:
        pass

    @flow(on_failure=[failure_hook])
    def f() -> None:
        pass

    assert f.retry_delay_seconds == 0 and f.isasync is False  # type: ignore[attr-defined]
    assert isinstance(f.task_runner, ThreadPoolTaskRunner)
    assert isinstance(f.version, str)
    assert f.should_validate_parameters is True  # type: ignore[attr-defined]
    assert f.on_failure_hooks == [failure_hook]
    assert task(viz_return_value=None, asset_deps=None)(lambda: None).name == "<lambda>"


def test_process_pool_runs_tasks_defined_in_main_without_cloudpickle(tmp_path: Path) -> None:
    """Prefect 3.9.1 runs ProcessPoolTaskRunner tasks defined in a script's __main__ (it always has
    cloudpickle); a plain `pip install actorflow` has no cloudpickle."""
    result = run_script(
        tmp_path,
        """
        import sys

        sys.modules["cloudpickle"] = None  # as in an install without the cloudpickle extra

        from actorflow import flow, task
        from actorflow.task_runners import ProcessPoolTaskRunner


        @task
        def square(x):
            return x * x


        @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
        def squares():
            return square.map([1, 2, 3]).result()


        if __name__ == "__main__":
            print(squares())
        """,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[1, 4, 9]"


# =================================================================================================
# Part 2: behaviours that already agree with Prefect 3.9.1 (keep them agreed)
# =================================================================================================


def test_agreed_task_calls_inside_and_outside_flows() -> None:
    """tests/test_tasks.py::TestTaskCall (sync), TestNestedTasks::test_nested_task,
    ::test_nested_submitted_task, ::test_nested_map, ::test_nested_wait_for."""

    @task
    def varargs(*foo: int, bar: int) -> Any:
        return foo, bar

    @task
    def varkw(foo: int, bar: int, **foobar: int) -> Any:
        return foo, bar, foobar

    @task
    def bar(y: int) -> int:
        return y + 1

    @task
    def outer() -> int:
        return ident.submit(42).result() + sum(f.result() for f in ident.map([1, 2]))

    @flow
    def test_flow() -> Any:
        return (
            bar(ident(1)),
            varargs(1, 2, 3, bar=4),
            varkw(1, 2, x=3, y=4, z=5),
            outer(),
            outer.submit(wait_for=[ident.submit(0)]).result(),
        )

    assert test_flow() == (2, ((1, 2, 3), 4), (1, 2, {"x": 3, "y": 4, "z": 5}), 45, 45)
    val = [1, 2]
    assert ident(val) is val


async def test_agreed_async_task_calls(anyio_backend: str) -> None:
    """tests/test_tasks.py::TestTaskCall::test_async_task_called_inside_async_flow,
    ::test_sync_task_called_inside_async_flow, TestNestedTasks::test_nested_async_task,
    ::test_nested_async_task_without_parent_flow, tests/test_task_engine.py::TestReturnState."""

    @task
    async def foo(x: int) -> int:
        return x

    @task
    async def outer() -> int:
        return await foo(42)

    @task
    async def bad() -> None:
        raise ValueError("xyz")

    @flow
    async def bar() -> tuple[int, int, int]:
        return await foo(1), ident(2), await outer()

    assert await bar() == (1, 2, 42)
    assert await outer() == 42
    state = await bad(return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match=exact("xyz")):
        await result_of(state)


def test_agreed_task_failures_and_flow_states() -> None:
    """tests/test_tasks.py::TestTaskCall::test_task_failure_raises_in_flow,
    TestTaskRun::test_task_failure_does_not_affect_flow,
    TestTaskSubmit::test_task_failure_does_not_affect_flow,
    tests/test_flows.py::TestFlowCall::test_final_state_reflects_exceptions_during_run."""

    @flow
    def raises() -> str:
        fails()
        return "bar"

    @flow
    def swallows() -> str:
        fails(return_state=True)
        fails.submit()
        return "bar"

    state = raises(return_state=True)
    assert state.is_failed()
    assert state.message == "Flow run encountered an exception: ValueError: Test"
    with pytest.raises(ValueError, match=exact("Test")):
        state.result()
    assert isinstance(state.result(raise_on_failure=False), ValueError)
    assert swallows() == "bar"


def test_agreed_derived_flow_states() -> None:
    """tests/test_flows.py::TestFlowCall::test_flow_state_reflects_returned_multiple_task_run_states,
    ::test_flow_state_with_cancelled_tasks_has_cancelled_state, ::test_flow_can_end_in_paused_state,
    ::test_flow_can_end_in_cancelled_state."""

    @task
    def cancel() -> Any:
        return Cancelled()

    @flow
    def three() -> Any:
        return fails(return_state=True), fails(return_state=True), ident(1, return_state=True)

    @flow
    def with_cancelled() -> Any:
        return cancel.submit(), ident.submit(1), fails.submit()

    @flow
    def paused() -> Any:
        return Paused()

    @flow
    def cancelled() -> Any:
        return Cancelled()

    state = three(return_state=True)
    assert state.is_failed() and state.message == "2/3 states failed."
    first, second, third = state.result(raise_on_failure=False)
    assert (first.is_failed(), second.is_failed(), third.is_completed()) == (True, True, True)
    state = with_cancelled(return_state=True)
    assert state.is_cancelled() and state.message == "1/3 states cancelled."
    with pytest.raises(CancelledRun, match=r"^Run cancelled\.$"):
        state.result(raise_on_failure=False)[0].result()
    with pytest.raises(PausedRun, match=r"^Run is paused, its result is not available\.$"):
        paused()
    assert paused(return_state=True).is_paused()
    with pytest.raises(CancelledRun, match=r"^Run cancelled\.$"):
        cancelled()


def test_agreed_flow_returning_a_failed_constructor_is_retried() -> None:
    """tests/test_flows.py::TestFlowCall::test_final_state_respects_returned_state (Failed(...))."""
    calls = []

    @flow(retries=1)
    def foo() -> Any:
        calls.append(1)
        return Failed(message="Test returned state", data="hello!")

    state = foo(return_state=True)
    assert state.is_failed() and state.message == "Test returned state"
    assert state.result(raise_on_failure=False) == "hello!"
    with pytest.raises(FailedRun, match=exact("hello!")):
        state.result()
    assert len(calls) == 2


def test_agreed_state_results() -> None:
    """prefect.states: result() of states that did not complete."""
    with pytest.raises(FailedRun, match=exact("bad")):
        Failed(message="bad").result()
    assert isinstance(Failed(message="bad").result(raise_on_failure=False), FailedRun)
    with pytest.raises(ValueError, match=exact("x")):
        Failed(data=ValueError("x")).result()
    from actorflow.exceptions import CrashedRun

    with pytest.raises(CrashedRun, match=exact("boom")):
        Crashed(message="boom").result()
    with pytest.raises(
        UnfinishedRun, match=r"^Run is in RUNNING state, its result is not available\.$"
    ):
        Running().result()
    assert str(Completed()) == "Completed()"
    assert str(Failed(message="bad")) == "Failed('bad')"
    assert str(StateType.COMPLETED) == "StateType.COMPLETED"


def test_agreed_submit_and_upstream_failures() -> None:
    """tests/test_tasks.py::TestTaskSubmit::test_raises_outside_of_flow,
    ::test_downstream_does_not_run_if_upstream_fails, ::test_downstream_runs_if_upstream_succeeds,
    ::test_downstream_receives_exception_if_upstream_fails_and_allow_failure,
    ::test_downstream_receives_exception_in_collection_if_upstream_fails_and_allow_failure,
    TestTaskWaitFor::test_downstream_does_not_run_if_upstream_fails."""
    with pytest.raises(RuntimeError):
        ident.submit(1)
    with pytest.raises(RuntimeError):
        ident.map([1, 2])

    @flow
    def test_flow() -> list[Any]:
        f = fails.submit()
        blocked = ident.submit(f)
        blocked.wait()
        waited = ident(2, wait_for=[f], return_state=True)
        return [
            blocked.state.name,
            blocked.state.type,
            waited.name,
            ident.submit(ident.submit(1)).result(),
            type(ident.submit(allow_failure(f)).result()).__name__,
            [type(x).__name__ for x in ident.submit(allow_failure([f, 1, 2])).result()],
            ident(2, wait_for=[allow_failure(f)]),
        ]

    assert test_flow() == [
        "NotReady",
        StateType.PENDING,
        "NotReady",
        1,
        "ValueError",
        ["ValueError", "int", "int"],
        2,
    ]


def test_agreed_map() -> None:
    """tests/test_tasks.py::TestTaskMap (inputs, unmapped, quote, keyword defaults, **kwargs,
    futures,
    states, wait/result, return_state)."""

    @task
    def add(x: Any, y: Any = 5) -> Any:
        return x + y

    @task
    def add_kw(x: int, **kwargs: int) -> int:
        return x + kwargs["y"]

    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    def gen() -> Iterator[int]:
        yield from (1, 2, 3)

    @flow
    def my_flow() -> list[Any]:
        futures = add.map([1, 2, 3])
        assert isinstance(futures, PrefectFutureList)
        assert futures.wait() is None  # type: ignore[func-returns-value]
        return [
            futures.result(),
            add.map((1, 2, 3), [4, 5, 6]).result(),
            add.map(gen(), unmapped(10)).result(),
            add.map(["a", "b"], "test").result(),
            add.map([[], []], unmapped([4, 5])).result(),
            add.map(quote(1), [1, 2]).result(),
            add_kw.map([1, 2], y=[4, 5]).result(),
            add_kw.map([1, 2], y=1).result(),
            add.map(numbers.submit()).result(),
            add.map(numbers(return_state=True)).result(),
            [s.name for s in add.map([1, 2], return_state=True)],
            add.map({"a": 1, "b": 2}, "!").result(),
        ]

    assert my_flow() == [
        [6, 7, 8],
        [5, 7, 9],
        [11, 12, 13],
        ["atest", "btest"],
        [[4, 5], [4, 5]],
        [2, 3],
        [5, 7],
        [2, 3],
        [6, 7, 8],
        [6, 7, 8],
        ["Completed", "Completed"],
        ["a!", "b!"],
    ]

    @flow
    def missing() -> Any:
        return add.map(5, 6)

    with pytest.raises(MappingMissingIterable):
        missing()


def test_agreed_futures_in_sync_flows() -> None:
    """tests/test_tasks.py::TestTaskFutures (sync flows), tests/test_futures.py wait and
    as_completed."""
    release = threading.Event()

    @task
    def blocked() -> int:
        release.wait(5)
        return 1

    @task
    async def async_ident(x: int) -> int:
        return x

    @flow
    def my_flow() -> list[Any]:
        slow = blocked.submit()
        assert slow.wait(0.01) is None  # type: ignore[func-returns-value]
        with pytest.raises(TimeoutError) as info:
            slow.result(timeout=0.01)
        assert (
            str(info.value) == f"Task run {slow.task_run_id} did not complete within 0.01 seconds"
        )
        done, not_done = wait([slow, ident.submit(1)], timeout=0.05)
        release.set()
        bad = fails.submit()
        return [
            (len(done), len(not_done), slow in not_done),
            slow.result(),
            slow.state.name,
            async_ident.submit(3).result(),
            isinstance(bad.result(raise_on_failure=False), ValueError),
            bad.state.message,
            sorted(f.result() for f in as_completed([ident.submit(i) for i in range(3)])),
        ]

    assert my_flow() == [
        (1, 1, True),
        1,
        "Completed",
        3,
        True,
        "Task run encountered an exception ValueError: Test",
        [0, 1, 2],
    ]


def test_agreed_retries() -> None:
    """tests/test_tasks.py::TestTaskRetries::test_task_respects_retry_count,
    ::test_task_only_uses_necessary_retries, tests/test_task_engine.py::TestTaskRetries
    (retry_condition_fn), TestTaskCallbacks."""
    calls: list[int] = []
    handled: list[StateType] = []

    @task(retries=3)
    def flaky() -> bool:
        calls.append(1)
        if len(calls) == 2:
            return True
        raise ValueError()

    def only_syntax_errors(task: Any, task_run: Any, state: State[Any]) -> bool:
        handled.append(state.type)
        try:
            state.result()
        except SyntaxError:
            return True
        return False

    @task(retries=3, retry_condition_fn=only_syntax_errors)
    def conditional() -> None:
        raise ValueError("no retry")

    assert flaky() is True and len(calls) == 2
    state = conditional(return_state=True)
    assert state.is_failed() and handled == [StateType.FAILED]
    with pytest.raises(TypeError):
        task(retry_condition_fn="not a callable")(lambda: None)  # type: ignore[arg-type]


def test_agreed_task_timeouts() -> None:
    """tests/test_tasks.py::TestTaskTimeouts::test_task_timeouts_actually_timeout,
    ::test_task_timeouts_are_not_task_crashes, ::test_task_timeouts_do_not_crash_flow_runs,
    tests/test_task_engine.py::TestTimeout::test_timeout_sync_task."""

    @task(timeout_seconds=0.05)
    def times_out(x: int) -> int:
        time.sleep(0.3)
        return x

    @flow
    def test_flow() -> Any:
        ax = times_out.submit(1)
        return ax, ident.submit(ax), ident.submit(42)

    flow_state = test_flow(return_state=True)
    assert flow_state.is_failed() and flow_state.message == "1/3 states failed."
    timed_out, blocked, independent = flow_state.result(raise_on_failure=False)
    assert timed_out.name == "TimedOut" and timed_out.is_failed() and not timed_out.is_crashed()
    assert timed_out.message == "Task run exceeded timeout of 0.05 second(s)"
    assert blocked.name == "NotReady" and independent.is_completed()
    with pytest.raises(TimeoutError, match=r"^Scope timed out after 0\.05 second\(s\)\.$"):
        times_out(1)


async def test_agreed_async_task_timeout(anyio_backend: str) -> None:
    """tests/test_task_engine.py::TestTimeout::test_timeout_async_task."""

    @task(timeout_seconds=0.05)
    async def async_task() -> None:
        await anyio.sleep(2)

    with pytest.raises(TimeoutError, match=r"^Scope timed out after 0\.05 second\(s\)\.$"):
        await async_task()
    state = await async_task(return_state=True)
    assert state.name == "TimedOut"
    assert state.message == "Task run exceeded timeout of 0.05 second(s)"


async def test_agreed_async_flow_timeout(anyio_backend: str) -> None:
    """tests/test_flows.py::TestFlowTimeouts::test_async_flows_fail_with_timeout,
    ::test_timeout_stops_execution_in_async_subflows."""
    completed = []

    @flow(timeout_seconds=0.05)
    async def my_subflow() -> None:
        await anyio.sleep(2)
        completed.append(1)

    @flow
    async def my_flow() -> Any:
        return None, await my_subflow(return_state=True)

    state = await my_flow(return_state=True)
    assert state.is_completed()
    _, subflow_state = await result_of(state)
    assert subflow_state.name == "TimedOut"
    assert subflow_state.message == "Flow run exceeded timeout of 0.05 second(s)"
    assert completed == []


def test_agreed_flow_retries() -> None:
    """tests/test_flows.py::TestFlowRetries::test_flow_retry_with_error_in_flow,
    ::test_flow_retry_with_no_error_in_flow_and_one_failed_task,
    ::test_flow_retry_with_error_in_flow_and_one_failed_task_with_retries_cannot_exceed_retries,
    ::test_parent_flow_retries_failed_child_flow_with_retries."""
    counts = {"flow": 0, "task": 0}

    @task(retries=2)
    def always_fails() -> None:
        counts["task"] += 1
        raise ValueError("This task always fails")

    @flow(retries=1)
    def my_flow() -> None:
        counts["flow"] += 1
        always_fails()

    with pytest.raises(ValueError, match=exact("This task always fails")):
        my_flow()
    assert counts == {"flow": 2, "task": 6}


def test_agreed_task_hooks() -> None:
    """tests/test_tasks.py::TestTaskHooksOnCompletion, TestTaskHooksOnFailure,
    TestTaskHooksWithKwargs (order, decorators, failing hooks swallowed, once after retries)."""
    calls: list[Any] = []

    def completed(task: Any, task_run: Any, state: State[Any]) -> None:
        calls.append(("completed", task.name, task_run.name, state.name))

    async def async_completed(task: Any, task_run: Any, state: State[Any]) -> None:
        calls.append("async")

    def broken(task: Any, task_run: Any, state: State[Any]) -> None:
        raise Exception("oops")

    def failed(task: Any, task_run: Any, state: State[Any], foo: int = 42) -> None:
        calls.append(("failed", state.name, foo))

    @task(on_completion=[completed, broken, async_completed], task_run_name="ok-run")
    def ok() -> None:
        pass

    @ok.on_completion
    def decorated(task: Any, task_run: Any, state: State[Any]) -> None:
        calls.append("decorated")

    @task(retries=2, on_failure=[failed, broken], on_completion=[completed])
    def bad() -> None:
        raise Exception("oops")

    @flow
    def my_flow() -> None:
        ok()
        bad.submit().wait()

    my_flow()
    assert calls == [
        ("completed", "ok", "ok-run", "Completed"),
        "async",
        "decorated",
        ("failed", "Failed", 42),
    ]
    with pytest.raises(TypeError) as info:
        task(on_completion=completed)(lambda: None)  # type: ignore[arg-type]
    assert str(info.value) == (
        "Expected iterable for 'on_completion'; got function instead. Please provide a list of "
        "hooks to 'on_completion':\n\n@task(on_completion=[hook1, hook2])\ndef my_task():\n\tpass"
    )


def test_agreed_flow_hooks() -> None:
    """tests/test_flows.py::TestFlowHooksOnCompletion, TestFlowHooksOnFailure,
    TestFlowHooksOnRunning,
    TestFlowHooksOnCrashed (a returned Crashed state)."""
    calls: list[Any] = []

    def running(flow: Any, flow_run: Any, state: State[Any]) -> None:
        calls.append(("running", flow.name, flow_run.name, state.name))

    def broken(flow: Any, flow_run: Any, state: State[Any]) -> None:
        raise Exception("oops")

    @flow(
        on_running=[running, broken],
        on_completion=[lambda f, fr, s: calls.append("completed")],
        on_failure=[broken, lambda f, fr, s: calls.append("failed")],
        flow_run_name="run-{x}",
    )
    def my_flow(x: int) -> None:
        if x:
            raise Exception("oops")

    @flow(on_crashed=[lambda f, fr, s: calls.append("crashed")])
    def crashes() -> Any:
        return Crashed()

    my_flow(0)
    assert my_flow(1, return_state=True).is_failed()
    assert crashes(return_state=True).is_crashed()
    assert calls == [
        ("running", "my-flow", "run-0", "Running"),
        "completed",
        ("running", "my-flow", "run-1", "Running"),
        "failed",
        "crashed",
    ]
    with pytest.raises(TypeError) as info:
        flow(on_failure=["test"])(lambda: None)  # type: ignore[list-item]
    assert str(info.value) == (
        "Expected callables in 'on_failure'; got str instead. Please provide a list of hooks to "
        "'on_failure':\n\n@flow(on_failure=[hook1, hook2])\ndef my_flow():\n\tpass"
    )


def test_agreed_caching() -> None:
    """tests/test_tasks.py::TestTaskCaching (cache_key_fn hits and misses, expiration,
    refresh_cache,
    self in cache_key_fn), TestCacheFunctionBuiltins, tests/test_task_engine.py::TestCachePolicy
    ::test_flow_parameter_caching, ::test_none_return_value_does_persist."""
    from actorflow.cache_policies import task_input_hash

    k1, k2, k3, salt = key(), key(), key(), key()

    @task(cache_key_fn=lambda *_: k1, persist_result=True)
    def keyed(x: int) -> int:
        return x

    @task(cache_key_fn=lambda *_: k2, cache_expiration=datetime.timedelta(seconds=-5))
    def expired(x: int) -> int:
        return x

    @task(cache_key_fn=task_input_hash, persist_result=True)
    def hashed(x: int, s: str) -> int:
        return x

    @task(cache_policy=FLOW_PARAMETERS, persist_result=True)
    def by_params(x: int) -> float:
        return time.monotonic()

    first_none = {"v": True}

    @task(cache_key_fn=lambda *_: k3, persist_result=True)
    def none_first() -> int | None:
        if first_none["v"]:
            first_none["v"] = False
            return None
        return 42

    @flow
    def bar(p: str) -> Any:
        states = [
            keyed(1, return_state=True),
            keyed(2, return_state=True),
            keyed.with_options(refresh_cache=True)(3, return_state=True),
            keyed(4, return_state=True),
            expired(1, return_state=True),
            expired(2, return_state=True),
            hashed(1, salt, return_state=True),
            hashed(2, salt, return_state=True),
            hashed(1, salt, return_state=True),
            by_params(1, return_state=True),
            by_params(2, return_state=True),
        ]
        return quote(([s.name for s in states], [s.result() for s in states[:9]]))

    names, results = bar(salt).unquote()
    assert names == [
        "Completed",
        "Cached",
        "Completed",
        "Cached",
        "Completed",
        "Completed",
        "Completed",
        "Completed",
        "Cached",
        "Completed",
        "Cached",
    ]
    assert results == [1, 1, 3, 3, 1, 2, 1, 2, 1]
    assert none_first() is None and none_first() is None


def test_agreed_run_names_and_tags_seen_by_hooks() -> None:
    """tests/test_tasks.py::test_task_run_name_is_set*, TestTaskRunTags::*,
    tests/test_flows.py::TestFlowRunName::test_sets_run_name_when_provided,
    ::test_sets_run_name_with_params_including_defaults."""
    seen: list[Any] = []

    def h(task: Any, task_run: Any, state: State[Any]) -> None:
        seen.append((task_run.name, sorted(task_run.tags)))

    @task(task_run_name="{name}-wuz-{where}", on_completion=[h], tags={"a"})
    def named(name: str, where: str = "here") -> None:
        pass

    @task(on_completion=[h])
    def plain() -> None:
        pass

    class Foo:
        a = 10

        @task(task_run_name="{self.a}|{x}", on_completion=[h])
        def method(self, x: int) -> int:
            return x

    @flow
    def my_flow() -> None:
        with tags("c"):
            named("chris")
            plain.submit().wait()
        plain()

    with tags("f"):
        my_flow()
    assert Foo().method(x=5) == 5
    assert seen[0] == ("chris-wuz-here", ["a", "c", "f"])
    assert re.fullmatch(r"plain-[0-9a-f]{3}", seen[1][0]) and seen[1][1] == ["c", "f"]
    assert re.fullmatch(r"plain-[0-9a-f]{3}", seen[2][0]) and seen[2][1] == ["f"]
    assert seen[3] == ("10|5", [])


def test_agreed_flow_definition() -> None:
    """tests/test_flows.py::TestFlow::test_initializes, ::test_default_name_is_from_function,
    ::test_lambda_name_coerced_to_legal_characters, TestDecorator::test_flow_decorator_initializes,
    TestFlowWithOptions::test_with_options_allows_override_of_flow_settings,
    ::test_with_options_can_unset_timeout_seconds_with_zero."""

    def my_fn() -> None:
        """
        Hello
        """

    f = Flow(name="test", fn=lambda **kwargs: 42, version="A", description="B", flow_run_name="hi")
    assert (f.name, f.fn(), f.version, f.description, f.flow_run_name) == (
        "test",
        42,
        "A",
        "B",
        "hi",
    )
    assert (Flow(fn=my_fn).name, Flow(fn=my_fn).description) == ("my-fn", "Hello")
    assert Flow(fn=lambda: 42).name == "unknown-lambda"

    @flow(timeout_seconds=10, retries=3, persist_result=True, result_serializer="pickle")
    def initial() -> None:
        pass

    copy = initial.with_options(
        name="Copied flow", timeout_seconds=0, retries=0, persist_result=False
    )
    assert (copy.name, copy.timeout_seconds, copy.retries, copy.persist_result) == (
        "Copied flow",
        None,
        0,
        False,
    )
    assert copy.result_serializer == "pickle"


def test_agreed_subflows_and_parameters() -> None:
    """tests/test_flows.py::TestSubflowCalls::test_subflow_call_with_no_tasks,
    ::test_recursive_sync_subflow, TestFlowParameterTypes,
    TestFlowCall::test_call_with_variadic_args,
    ::test_call_ignores_incompatible_parameter_types_if_asked."""

    class Unserializable:
        pass

    data = Unserializable()

    @flow
    def child(x: Any) -> Any:
        return x

    @flow
    def recurse(i: int) -> int:
        return i if i == 0 else i + recurse(i - 1)

    @flow
    def varargs(*foo: int, bar: int) -> Any:
        return foo, bar

    @flow(validate_parameters=False)
    def lenient(x: int) -> Any:
        return x

    @flow
    def parent() -> list[Any]:
        return [child(1), child(data) is data, child(ident(data)) is data, recurse(3)]

    assert parent() == [1, True, True, 6]
    assert varargs(1, 2, bar=3) == ((1, 2), 3)
    assert lenient(x="foo") == "foo"  # type: ignore[arg-type]
    with pytest.raises(ParameterBindError) as info:
        child()  # type: ignore[call-arg]
    assert str(info.value) == (
        "Error binding parameters for function 'child': missing a required argument: 'x'.\n"
        "Function 'child' has signature 'x' but received args: () and kwargs: []."
    )


async def test_agreed_async_subflows(anyio_backend: str) -> None:
    """tests/test_flows.py::TestSubflowCalls::test_async_flow_with_async_subflow_and_async_task,
    ::test_async_flow_with_sync_subflow_and_sync_task, ::test_recursive_async_subflow."""

    @task
    async def compute(x: int) -> int:
        return x + 1

    @flow
    async def child(x: int) -> int:
        return await compute(x)

    @flow
    def sync_child(x: int) -> int:
        return ident(x)

    @flow
    async def recurse(i: int) -> int:
        return i if i == 0 else i + await recurse(i - 1)

    @flow
    async def parent() -> list[int]:
        return [await child(1), sync_child(3), await recurse(3)]

    assert await parent() == [2, 3, 6]


def test_agreed_run_name_and_reserved_errors() -> None:
    """tests/test_tasks.py::TestTaskRunName::test_invalid_run_name, ::test_invalid_runtime_run_name,
    TestTaskWaitFor::test_using_wait_for_in_task_definition_raises_reserved,
    tests/test_flows.py::TestFlow::test_invalid_run_name."""

    class InvalidRunNameArg:
        def format(*args: Any, **kwargs: Any) -> None:
            pass

    with pytest.raises(
        TypeError,
        match=exact(
            "Expected string or callable for 'task_run_name'; got InvalidRunNameArg instead."
        ),
    ):
        task(task_run_name=InvalidRunNameArg())(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError,
        match=exact(
            "Expected string or callable for 'flow_run_name'; got InvalidRunNameArg instead."
        ),
    ):
        Flow(fn=lambda: 1, name="hello", flow_run_name=InvalidRunNameArg())  # type: ignore[arg-type]
    with pytest.raises(
        ReservedArgumentError,
        match=exact("'wait_for' is a reserved argument name and cannot be used."),
    ):
        task(lambda wait_for: None)


def test_agreed_interrupts_propagate_from_tasks() -> None:
    """tests/test_task_engine.py::TestTaskCrashDetection::test_interrupt_in_task_function_crashes_task_sync."""
    for exc_type in (KeyboardInterrupt, SystemExit):

        @task
        def interrupted() -> None:
            raise exc_type()  # noqa: B023 - called inside the loop iteration

        with pytest.raises(exc_type):
            interrupted()


def test_agreed_task_options_and_introspection() -> None:
    """tests/test_tasks.py::TestTaskName, TestTaskKey::test_task_key_typical_case, TestTaskRunName,
    TestTaskVersion, TestTaskWithOptions::test_with_options_allows_override_of_0_retries,
    TestTaskCall::test_task_supports_callable_objects, ::test_task_supports_instance_methods."""

    @task(name="another_name", version="test-dev-experimental", task_run_name=lambda: "fn_name")
    def my_task() -> None:
        pass

    @task(retries=3, retry_delay_seconds=10)
    def retried() -> None:
        pass

    class Callable:
        def __call__(self, prefix: str) -> str:
            return prefix + "hello"

    class Foo:
        def __init__(self, x: int) -> None:
            self.x = x

        @task
        def instance_method(self) -> int:
            return self.x

        @classmethod
        @task
        def class_method(cls) -> str:
            return cls.__name__

        @staticmethod
        @task
        def static_method() -> str:
            return "static"

    obj = Callable()
    assert (my_task.name, my_task.version, my_task.task_run_name()) == (
        "another_name",
        "test-dev-experimental",
        "fn_name",
    )
    assert ident.task_key.startswith("ident-")
    zero = retried.with_options(retries=0, retry_delay_seconds=0)
    assert (zero.retries, zero.retry_delay_seconds) == (0, 0)
    assert Task(fn=obj).fn is obj and Task(fn=obj)("a") == "ahello"
    assert (Foo(5).instance_method(), Foo.class_method(), Foo.static_method()) == (
        5,
        "Foo",
        "static",
    )
