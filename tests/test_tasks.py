"""Calling tasks: sync and async, inside and outside flows, options, names, keys, hooks."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from actorflow import flow, get_run_logger, task
from actorflow.exceptions import (
    MissingContextError,
    ParameterBindError,
    ReservedArgumentError,
)
from actorflow.states import State, StateType


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task
async def aadd(x: int, y: int = 1) -> int:
    return x + y


@task
def fails() -> None:
    raise ValueError("Test")


def test_sync_task_called_outside_flow_returns_result() -> None:
    assert add(1, 2) == 3


def test_sync_task_returns_the_same_object() -> None:
    @task
    def identity(x: Any) -> Any:
        return x

    value: list[int] = []
    assert identity(value) is value


def test_failing_task_reraises_original_exception() -> None:
    with pytest.raises(ValueError, match="Test"):
        fails()


def test_return_state_never_raises() -> None:
    state = fails(return_state=True)
    assert isinstance(state, State)
    assert state.is_failed()
    assert state.message == "Task run encountered an exception ValueError: Test"
    with pytest.raises(ValueError, match="Test"):
        state.result()
    assert isinstance(state.result(raise_on_failure=False), ValueError)


def test_return_state_completed() -> None:
    state = add(1, return_state=True)
    assert state.is_completed() and state.result() == 2
    assert state.type is StateType.COMPLETED and state.name == "Completed"


@pytest.mark.anyio
async def test_async_task_returns_awaitable_outside_flow(anyio_backend: str) -> None:
    coro = aadd(2, 3)
    assert await coro == 5


@pytest.mark.anyio
async def test_async_task_inside_async_flow(anyio_backend: str) -> None:
    @flow
    async def my_flow() -> tuple[int, int]:
        return await aadd(1), add(1)

    assert await my_flow() == (2, 2)


def test_sync_flow_calls_sync_tasks() -> None:
    @flow
    def my_flow() -> int:
        return add(add(1))

    assert my_flow() == 3


def test_failed_task_called_with_return_state_does_not_fail_flow() -> None:
    @flow
    def my_flow() -> str:
        state = fails(return_state=True)
        assert state.is_failed()
        return "bar"

    assert my_flow() == "bar"


def test_uncaught_task_failure_fails_flow() -> None:
    @flow
    def my_flow() -> None:
        fails()

    state = my_flow(return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match="Test"):
        state.result()


def test_varargs_and_kwargs_are_kept() -> None:
    @task
    def foo(*args: int, **kwargs: int) -> tuple[tuple[int, ...], dict[str, int]]:
        return args, kwargs

    assert foo(1, 2, 3, bar=4) == ((1, 2, 3), {"bar": 4})


def test_reserved_argument_names() -> None:
    with pytest.raises(ReservedArgumentError, match="'wait_for' is a reserved argument name"):

        @task
        def bad(wait_for: int) -> None: ...

    with pytest.raises(ReservedArgumentError, match="'return_state' is a reserved"):

        @task
        def bad2(return_state: int) -> None: ...


def test_wrong_arguments_raise_parameter_bind_error() -> None:
    with pytest.raises(ParameterBindError, match="missing a required argument: 'y'"):
        add.fn  # noqa: B018
        task(lambda x, y: x + y)(42)
    with pytest.raises(ParameterBindError, match="multiple values for argument 'x'"):
        add(1, x=2)


def test_type_error_inside_body_is_not_a_bind_error() -> None:
    @task
    def body_type_error(x: int) -> None:
        len(x)  # type: ignore[arg-type]

    with pytest.raises(TypeError) as info:
        body_type_error(1)
    assert not isinstance(info.value, ParameterBindError)


def test_task_on_top_of_classmethod_and_staticmethod() -> None:
    # As Prefect 3.9 accepts them: the decorator above the method wrapper.
    class Thing:
        factor = 3

        @task
        @classmethod
        def scaled(cls, x: int) -> int:
            return cls.factor * x

        @task
        @staticmethod
        def doubled(x: int) -> int:
            return 2 * x

    assert Thing.scaled(2) == 6 and Thing().scaled(2) == 6
    assert Thing.doubled(2) == 4 and Thing().doubled(2) == 4


def test_task_as_method() -> None:
    class Thing:
        def __init__(self) -> None:
            self.a = 10

        @task(task_run_name="{self.a}|{x}")
        def method(self, x: int) -> int:
            return self.a + x

    assert Thing().method(5) == 15
    state = Thing().method(5, return_state=True)
    assert state.result() == 15


def test_task_run_name_template_with_attribute_access() -> None:
    class Dataset:
        name = "customers"

    names: list[str] = []

    @task(task_run_name="train on {dataset.name} with {model}")
    def train(dataset: Dataset, model: str = "rf") -> None:
        from actorflow._core import current_run

        run = current_run.get()
        assert run is not None
        names.append(run.name)

    train(Dataset())
    assert names == ["train on customers with rf"]


def test_task_run_name_callable_and_errors() -> None:
    @task(task_run_name=lambda: "generated")
    def named() -> str:
        from actorflow._core import current_run

        run = current_run.get()
        assert run is not None
        return run.name

    assert named() == "generated"

    @task(task_run_name=lambda: None)  # type: ignore[arg-type,return-value]
    def badly_named() -> None: ...

    with pytest.raises(TypeError, match="returned type NoneType but a string is required"):
        badly_named()

    with pytest.raises(TypeError, match="Expected string or callable for 'task_run_name'"):
        task(task_run_name=3)(lambda: None)  # type: ignore[arg-type]

    # A template naming no parameter fails where it is written, naming the task and option.
    with pytest.raises(
        ValueError,
        match=r"task 'missing_key': task_run_name '\{missing\}' refers to 'missing', "
        r"which is not one of its parameters \(x\)",
    ):

        @task(task_run_name="{missing}")
        def missing_key(x: int) -> None: ...

    with pytest.raises(ValueError, match="positional field"):
        task(task_run_name="run-{}")(lambda x: None)

    # One that fits the signature but not the values fails at the call, naming the same.
    @task(task_run_name="on {day.year}")
    def on_day(day: object) -> None: ...

    with pytest.raises(
        ValueError,
        match=r"task 'on_day': task_run_name 'on \{day.year\}' cannot be formatted "
        r".*AttributeError",
    ):
        on_day(3)


def test_default_run_names() -> None:
    names: list[str] = []

    @task
    def where() -> None:
        from actorflow._core import current_run

        run = current_run.get()
        assert run is not None
        names.append(run.name)

    where()

    @flow
    def my_flow() -> None:
        where()

    my_flow()
    assert names[0] == "where"
    assert names[1].startswith("where-") and len(names[1]) == len("where-") + 3


def test_task_key_is_stable_across_processes() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, "tests")
        from keyed_tasks import keyed
        print(keyed.task_key)
        """
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(keys) == 1
    (key,) = keys
    assert key.startswith("keyed-") and len(key) == len("keyed-") + 8


def test_task_key_changes_with_source() -> None:
    @task
    def one() -> int:
        return 1

    first = one.task_key

    @task  # type: ignore[no-redef]
    def one() -> int:
        return 2

    assert one.task_key != first
    assert first.startswith("one-")


def test_with_options_returns_a_copy() -> None:
    base = task(name="base", tags=["a"], retries=1)(lambda: 1)
    copy = base.with_options(name="copy", retries=3)
    assert (copy.name, copy.retries) == ("copy", 3)
    assert (base.name, base.retries) == ("base", 1)
    assert copy.tags == frozenset({"a"})
    with pytest.raises(TypeError, match="unknown option"):
        base.with_options(nope=1)


def test_hooks_run_and_failing_hook_is_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, str]] = []

    def completion(tsk: Any, run: Any, state: State[Any]) -> None:
        seen.append(("completion", state.name))

    def broken(tsk: Any, run: Any, state: State[Any]) -> None:
        raise RuntimeError("hook is broken")

    def failure(tsk: Any, run: Any, state: State[Any]) -> None:
        seen.append(("failure", state.name))

    @task(on_completion=[broken, completion], on_failure=[failure])
    def maybe(fail: bool) -> int:
        if fail:
            raise ValueError("nope")
        return 1

    with caplog.at_level(logging.ERROR, logger="actorflow"):
        assert maybe(False) == 1
    assert "hook is broken" in caplog.text
    with pytest.raises(ValueError):
        maybe(True)
    assert seen == [("completion", "Completed"), ("failure", "Failed")]


def test_hook_decorator_and_async_hook() -> None:
    seen: list[str] = []

    @task
    def ok() -> int:
        return 1

    @ok.on_completion
    async def async_hook(tsk: Any, run: Any, state: State[Any]) -> None:
        seen.append(state.name)

    assert ok() == 1
    assert seen == ["Completed"]


def test_hook_validation_messages() -> None:
    def hook(*a: Any) -> None: ...

    with pytest.raises(TypeError, match="Expected iterable for 'on_completion'; got function"):
        task(on_completion=hook)(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Expected callables in 'on_failure'; got str instead"):
        task(on_failure=["x"])(lambda: None)


def test_on_running_hook() -> None:
    states: list[str] = []

    @task(on_running=[lambda t, r, s: states.append(s.name)], retries=1)
    def flaky() -> None:
        raise ValueError("x")

    with pytest.raises(ValueError):
        flaky()
    assert states == ["Running", "Retrying"]


def test_get_run_logger_outside_run() -> None:
    with pytest.raises(MissingContextError, match="no active flow or task run context"):
        get_run_logger()


def test_get_run_logger_in_task_names_the_run(caplog: pytest.LogCaptureFixture) -> None:
    @task(task_run_name="logging-run")
    def logs() -> None:
        get_run_logger().info("hello from the task")

    with caplog.at_level(logging.INFO, logger="actorflow"):
        logs()
    record = next(r for r in caplog.records if "hello from the task" in r.getMessage())
    assert record.getMessage() == "hello from the task"
    assert record.task_run_name == "logging-run"  # type: ignore[attr-defined]
    assert record.name == "actorflow.task_runs"


def test_log_prints(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    @task(log_prints=True)
    def explain_tasks() -> None:
        print("run any python code here!")

    @task
    def quiet() -> None:
        print("to stdout")

    with caplog.at_level(logging.INFO, logger="actorflow"):
        explain_tasks()
        quiet()
    assert "run any python code here!" in caplog.text
    assert "to stdout" not in caplog.text
    assert "to stdout" in capsys.readouterr().out


def test_log_prints_inherited_from_flow(caplog: pytest.LogCaptureFixture) -> None:
    @task
    def child() -> None:
        print("child speaks")

    @task(log_prints=False)
    def opted_out() -> None:
        print("opted out speaks")

    @flow(log_prints=True)
    def parent() -> None:
        child()
        opted_out()

    with caplog.at_level(logging.INFO, logger="actorflow"):
        parent()
    assert "child speaks" in caplog.text
    assert "opted out speaks" not in caplog.text


def test_tags_context() -> None:
    from actorflow import tags

    @task(tags=["own"])
    def tagged() -> frozenset[str]:
        from actorflow._core import current_run

        run = current_run.get()
        assert run is not None
        return run.tags

    with tags("outer"):
        assert tagged() == frozenset({"own", "outer"})
    assert tagged() == frozenset({"own"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": "3"}, r"task 'job': retries must be a whole number >= 0, got '3' of type str"),
        ({"retries": 2.5}, r"retries must be a whole number >= 0, got 2.5 of type float"),
        ({"retries": -1}, r"retries must be a whole number >= 0, got -1"),
        ({"timeout_seconds": -1}, r"task 'job': timeout_seconds must be a positive, finite"),
        ({"timeout_seconds": float("nan")}, r"timeout_seconds must be .* got nan"),
        ({"timeout_seconds": "5"}, r"timeout_seconds must be .* got '5' of type str"),
        ({"retry_delay_seconds": [1, -2]}, r"each of retry_delay_seconds must be .* got -2"),
        ({"retry_delay_seconds": float("inf")}, r"retry_delay_seconds must be a finite number"),
    ],
)
def test_bad_options_fail_at_decoration_naming_task_and_option(
    options: dict[str, Any], message: str
) -> None:
    def job(x: int) -> int:
        return x

    with pytest.raises(ValueError, match=message):
        task(**options)(job)
