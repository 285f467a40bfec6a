"""Cache policies: each built-in policy, their composition, and how task options choose one."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

import actorflow.cache_policies as cache_policies
from actorflow import flow, task
from actorflow.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CacheKeyError,
    CacheKeyFnPolicy,
    CachePolicy,
    CompoundCachePolicy,
    FlowParameters,
    Inputs,
    KeyContext,
    NoCache,
    RunId,
    TaskSource,
    task_input_hash,
)
from actorflow.states import State


def names(states: list[State[Any]]) -> list[str]:
    return [state.name for state in states]


# -- composition ---------------------------------------------------------------------------------
def test_public_face_exports_exactly_all() -> None:
    public = {name for name in dir(cache_policies) if not name.startswith("_")}
    assert public == set(cache_policies.__all__)
    assert cache_policies.Inputs.__module__ == "actorflow.cache_policies"


def test_default_is_inputs_task_source_and_run_id() -> None:
    assert isinstance(DEFAULT, CompoundCachePolicy)
    assert DEFAULT == INPUTS + TASK_SOURCE + RUN_ID
    assert set(map(type, DEFAULT.policies)) == {Inputs, TaskSource, RunId}


def test_addition_flattens_and_is_order_free() -> None:
    left = (INPUTS + TASK_SOURCE) + (RUN_ID + FLOW_PARAMETERS)
    right = FLOW_PARAMETERS + RUN_ID + TASK_SOURCE + INPUTS
    assert isinstance(left, CompoundCachePolicy)
    assert len(left.policies) == 4
    assert left == right
    assert hash(left) == hash(right)


def test_no_cache_is_the_identity_of_addition() -> None:
    assert INPUTS + NO_CACHE == INPUTS
    assert NO_CACHE + TASK_SOURCE == TASK_SOURCE
    assert NONE is NO_CACHE
    assert isinstance(NO_CACHE, NoCache)


def test_inputs_parts_merge_their_exclusions() -> None:
    policy = Inputs(exclude=["a"]) + TASK_SOURCE + Inputs(exclude=("b",))
    assert isinstance(policy, CompoundCachePolicy)
    inputs = [p for p in policy.policies if isinstance(p, Inputs)]
    assert inputs == [Inputs(exclude=("a", "b"))]


def test_subtracting_a_name_excludes_an_input() -> None:
    assert INPUTS - "x" == Inputs(exclude=("x",))
    assert INPUTS - "x" - "y" == Inputs(exclude=("x", "y"))
    default_minus = DEFAULT - "x"
    assert isinstance(default_minus, CompoundCachePolicy)
    assert Inputs(exclude=("x",)) in default_minus.policies
    # Policies that do not hash inputs have nothing to leave out.
    assert TASK_SOURCE - "x" == TASK_SOURCE
    assert (TASK_SOURCE + RUN_ID) - "x" == TASK_SOURCE + RUN_ID


def test_subtracting_or_adding_the_wrong_type_raises() -> None:
    with pytest.raises(TypeError, match="Can only subtract strings"):
        INPUTS - 1  # type: ignore[operator]
    with pytest.raises(TypeError, match="Can only subtract strings"):
        DEFAULT - None  # type: ignore[operator]
    with pytest.raises(TypeError):
        INPUTS + "x"  # type: ignore[operator]


# -- policies through tasks ----------------------------------------------------------------------
def test_default_caches_the_same_call_within_one_flow_run() -> None:
    calls: list[int] = []

    @task(persist_result=True)
    def add_one(x: int) -> int:
        calls.append(x)
        return x + 1

    @flow
    def my_flow() -> list[State[Any]]:
        return [add_one(1, return_state=True), add_one(1, return_state=True),
                add_one(2, return_state=True)]  # fmt: skip

    first = my_flow(return_state=True).result()
    assert names(first) == ["Completed", "Cached", "Completed"]
    assert [s.result() for s in first] == [2, 2, 3]
    assert calls == [1, 2]
    second = my_flow(return_state=True).result()  # a new flow run: recompute
    assert names(second) == ["Completed", "Cached", "Completed"]
    assert calls == [1, 2, 1, 2]


def test_default_outside_a_flow_never_repeats_a_key() -> None:
    calls: list[int] = []

    @task(persist_result=True)
    def add_one(x: int) -> int:
        calls.append(x)
        return x + 1

    assert add_one(1) == 2
    assert add_one(1) == 2
    assert calls == [1, 1]


def test_inputs_policy_hits_across_calls_and_flow_runs() -> None:
    calls: list[tuple[int, int]] = []

    @task(cache_policy=INPUTS)
    def mul(x: int, y: int = 2) -> int:
        calls.append((x, y))
        return x * y

    @flow
    def outer(x: int) -> int:
        return mul(x)

    assert mul(3) == 6
    assert mul(3, y=2) == 6  # the default, given: the same inputs
    assert outer(3) == 6
    assert mul(3, 3) == 9
    assert mul(x=3, y=3) == 9
    assert calls == [(3, 2), (3, 3)]


def test_inputs_exclusion_leaves_an_argument_out_of_the_key() -> None:
    calls: list[str] = []

    @task(cache_policy=INPUTS - "verbose")
    def fetch(url: str, verbose: bool = False) -> str:
        calls.append(url)
        return url.upper()

    @task(cache_policy=Inputs(exclude=["verbose"]))
    def fetch2(url: str, verbose: bool = False) -> str:
        calls.append(url + "2")
        return url

    assert fetch("a") == "A"
    assert fetch("a", verbose=True) == "A"
    assert fetch("b", verbose=True) == "B"
    assert fetch2("a") == fetch2("a", True) == "a"
    assert calls == ["a", "b", "a2"]


def _exec_task(source: str, policy: CachePolicy) -> Any:
    namespace: dict[str, Any] = {"__name__": "tests.generated"}
    exec(source, namespace)
    return task(namespace["work"], cache_policy=policy)


def test_task_source_policy_follows_the_source_not_the_inputs() -> None:
    calls: list[int] = []
    v1 = "def work(x):\n    calls.append(x)\n    return 'v1'\n"
    v2 = "def work(x):\n    calls.append(x)\n    return 'v2'\n"
    first = _exec_task(v1, TASK_SOURCE)
    first.fn.__globals__["calls"] = calls
    assert first(1) == "v1"
    assert first(2) == "v1"  # inputs are not part of the key
    edited = _exec_task(v2, TASK_SOURCE)
    edited.fn.__globals__["calls"] = calls
    assert edited(1) == "v2"  # same task name, new source: recomputed
    assert calls == [1, 1]


def test_inputs_policy_ignores_source_edits() -> None:
    calls: list[int] = []
    first = _exec_task("def work(x):\n    calls.append(x)\n    return 'v1'\n", INPUTS)
    first.fn.__globals__["calls"] = calls
    edited = _exec_task("def work(x):\n    calls.append(x)\n    return 'v2'\n", INPUTS)
    edited.fn.__globals__["calls"] = calls
    assert first(1) == "v1"
    assert edited(1) == "v1"
    assert calls == [1]


def test_flow_parameters_policy_keys_on_the_flow_run_parameters() -> None:
    calls: list[int] = []

    @task(cache_policy=FLOW_PARAMETERS)
    def step(x: int) -> int:
        calls.append(x)
        return x

    @flow
    def pipeline(p: int, x: int) -> int:
        return step(x)

    assert pipeline(1, 10) == 10
    assert pipeline(1, 10) == 10  # same flow parameters, new run: cached
    assert pipeline(2, 10) == 10
    assert calls == [10, 10]
    # Outside a flow there are no flow parameters: no key, no caching.
    assert step(5) == 5
    assert step(5) == 5
    assert calls == [10, 10, 5, 5]


def test_run_id_policy_caches_within_a_flow_run_whatever_the_inputs() -> None:
    calls: list[int] = []

    @task(cache_policy=RUN_ID)
    def once_per_run(x: int) -> int:
        calls.append(x)
        return x

    @flow
    def pipeline() -> list[int]:
        return [once_per_run(1), once_per_run(2)]

    assert pipeline() == [1, 1]
    assert pipeline() == [1, 1]
    assert calls == [1, 1]


def test_run_id_outside_a_flow_uses_the_parent_run() -> None:
    calls: list[int] = []

    @task(cache_policy=RUN_ID)
    def inner(x: int) -> int:
        calls.append(x)
        return x

    @task
    def outer() -> list[int]:
        return [inner(1), inner(2)]

    assert outer() == [1, 1]
    assert calls == [1]  # inner(2) shares the parent's key
    assert outer() == [1, 1]
    assert calls == [1, 1]  # a new parent run: recomputed


def test_no_cache_turns_caching_off_entirely() -> None:
    calls: list[int] = []

    @task(cache_policy=NO_CACHE, persist_result=True)
    def work(x: int) -> int:
        calls.append(x)
        return x

    assert work.cache is None
    work(1)
    work(1)
    assert calls == [1, 1]


def test_composed_policy_misses_when_any_part_changes() -> None:
    calls: list[tuple[int, int]] = []

    @task(cache_policy=INPUTS + FLOW_PARAMETERS)
    def step(x: int) -> int:
        calls.append((x, 0))
        return x

    @flow
    def pipeline(p: int, x: int) -> int:
        return step(x)

    pipeline(1, 1)
    pipeline(1, 1)  # hit
    pipeline(2, 1)  # flow parameter changed
    pipeline(2, 2)  # input changed
    assert calls == [(1, 0), (1, 0), (2, 0)]


def test_custom_policy_subclass() -> None:
    class EvenOdd(CachePolicy):
        def compute_key(
            self,
            task_ctx: KeyContext,
            inputs: dict[str, Any],
            flow_parameters: dict[str, Any],
            **kwargs: Any,
        ) -> str | None:
            assert task_ctx.parameters == inputs
            return "even" if inputs["x"] % 2 == 0 else "odd"

    calls: list[int] = []

    @task(cache_policy=EvenOdd() + TASK_SOURCE)
    def parity(x: int) -> int:
        calls.append(x)
        return x % 2

    assert [parity(2), parity(4), parity(3), parity(5)] == [0, 0, 1, 1]
    assert calls == [2, 3]


# -- options: persist_result inference, key functions, storage keys --------------------------------
def test_persist_result_is_inferred_from_cache_options(tmp_path: Path) -> None:
    def f(x: int) -> int:
        return x

    assert task(f, cache_policy=INPUTS).cache is not None
    assert task(f, result_storage=str(tmp_path)).cache is not None
    assert task(f, result_serializer="json").cache is not None
    assert task(f, cache_key_fn=lambda ctx, p: "k").cache is not None
    assert task(f, result_storage_key="k").cache is not None
    assert task(f, persist_result=True).cache is not None
    assert task(f).cache is not None  # follows its flow at run time
    assert task(f, cache_policy=None).cache is None


def test_persist_result_false_ignores_the_policy(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def f(x: int) -> int:
        calls.append(x)
        return x

    with caplog.at_level(logging.WARNING, logger="actorflow.cache"):
        t = task(f, cache_policy=INPUTS, persist_result=False)
    assert t.cache is None
    assert "Ignoring `cache_policy`" in caplog.text
    t(1)
    t(1)
    assert calls == [1, 1]


def test_a_task_without_options_persists_only_in_a_persisting_flow(tmp_path: Path) -> None:
    calls: list[int] = []

    @task
    def plain(x: int) -> int:
        calls.append(x)
        return x

    @flow
    def quiet() -> list[int]:
        return [plain(1), plain(1)]

    @flow(persist_result=True, result_storage=str(tmp_path / "flow-store"))
    def persisting() -> list[str]:
        return [plain(1, return_state=True).name, plain(1, return_state=True).name]

    assert plain(1) == plain(1) == 1
    assert quiet() == [1, 1]
    assert calls == [1, 1, 1, 1]
    assert persisting() == ["Completed", "Cached"]
    assert calls == [1, 1, 1, 1, 1]
    # Storage follows the flow's too.
    assert any(p.is_file() for p in (tmp_path / "flow-store").iterdir())


def test_flow_result_serializer_applies_to_its_tasks(tmp_path: Path) -> None:
    from actorflow.results import decode_record

    @task(result_storage=str(tmp_path), cache_policy=TASK_SOURCE)
    def pair() -> tuple[int, int]:
        return (1, 2)

    @flow(result_serializer="json")
    def as_json() -> Any:
        return pair()

    assert as_json() == (1, 2)  # computed
    assert as_json() == [1, 2]  # read back: JSON has no tuples, and the flow asked for JSON
    (record,) = [p for p in tmp_path.iterdir() if p.is_file() and not p.name.startswith(".")]
    assert decode_record(record.read_bytes(), record.name).format == "json"


def test_cache_key_fn_gives_the_key(tmp_path: Path) -> None:
    calls: list[str] = []

    def by_user(context: KeyContext, parameters: dict[str, Any]) -> str:
        assert context.task_run.task.name == "greet"
        return f"greet-{parameters['user']['id']}"

    @task(cache_key_fn=by_user, result_storage=str(tmp_path))
    def greet(user: dict[str, Any]) -> str:
        calls.append(user["name"])
        return f"hi {user['name']}"

    assert greet({"id": 1, "name": "ann"}) == "hi ann"
    assert greet({"id": 1, "name": "bob"}) == "hi ann"  # same key: the stored result
    assert calls == ["ann"]
    assert (tmp_path / "greet-1").is_file()  # a safe key names the record as it is


def test_cache_key_fn_wins_over_policy_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="actorflow.cache"):
        t = task(lambda x: x, cache_policy=INPUTS, cache_key_fn=lambda c, p: "k")
    assert "Both `cache_policy` and `cache_key_fn`" in caplog.text
    assert isinstance(t.cache.policy, CacheKeyFnPolicy)


def test_cache_key_fn_returning_none_runs_uncached() -> None:
    calls: list[int] = []

    @task(cache_key_fn=lambda context, parameters: None)
    def work(x: int) -> int:
        calls.append(x)
        return x

    work(1)
    work(1)
    assert calls == [1, 1]


def test_failing_key_functions_fail_the_run_loudly() -> None:
    def broken(context: KeyContext, parameters: dict[str, Any]) -> str:
        raise RuntimeError("no key today")

    @task(cache_key_fn=broken)
    def work(x: int) -> int:
        return x

    state = work(1, return_state=True)
    assert state.is_failed()
    assert "no key today" in (state.message or "")
    with pytest.raises(CacheKeyError, match="computing its cache key raised RuntimeError"):
        state.result()

    @task(cache_key_fn=lambda context, parameters: 42)  # type: ignore[arg-type, return-value]
    def bad_type(x: int) -> int:
        return x

    state = bad_type(1, return_state=True)
    assert state.is_failed()
    assert "must return a str or None, got int" in (state.message or "")


def test_task_input_hash_as_key_function() -> None:
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash)
    def work(x: int) -> int:
        calls.append(x)
        return x

    assert [work(1), work(1), work(2)] == [1, 1, 2]
    assert calls == [1, 2]


def test_result_storage_key_names_the_record(tmp_path: Path) -> None:
    calls: list[str] = []

    @task(result_storage=str(tmp_path), result_storage_key="reports/{parameters[name]}.rec")
    def report(name: str) -> str:
        calls.append(name)
        return name * 2

    assert report("a") == "aa"
    assert report("a") == "aa"
    assert report("b") == "bb"
    assert calls == ["a", "b"]
    assert sorted(os.listdir(tmp_path / "reports")) == ["a.rec", "b.rec"]


def test_result_storage_key_may_not_escape_the_storage(tmp_path: Path) -> None:
    @task(result_storage=str(tmp_path), result_storage_key="../{parameters[name]}")
    def report(name: str) -> str:
        return name

    state = report("x", return_state=True)
    assert state.is_failed()
    assert "Invalid result storage key '../x'" in (state.message or "")


def test_bad_options_fail_at_definition() -> None:
    with pytest.raises(TypeError, match="must be a CachePolicy"):
        task(lambda: None, cache_policy="inputs")
    with pytest.raises(ValueError, match="Unknown result_serializer 'yaml'"):
        task(lambda: None, result_serializer="yaml")
    with pytest.raises(ValueError, match="cache_unhashable must be 'error' or 'warn'"):
        task(lambda: None, cache_unhashable="ignore")
    with pytest.raises(TypeError, match=r"cache_expiration .* must be a datetime\.timedelta"):
        task(lambda: None, cache_expiration="10s")


def test_cached_state_runs_completion_hooks_and_with_options_copies_the_cache() -> None:
    seen: list[str] = []

    def hook(t: Any, run: Any, state: State[Any]) -> None:
        seen.append(state.name)

    @task(cache_policy=INPUTS, on_completion=[hook])
    def work(x: int) -> int:
        return x

    work(1)
    work(1)
    assert seen == ["Completed", "Cached"]
    uncached = work.with_options(cache_policy=NO_CACHE)
    assert uncached.cache is None
    assert work.with_options(name="again").cache is not None


def test_key_context_and_policy_keys_directly() -> None:
    from actorflow._core import TaskRun

    @task
    def work(x: int, y: int = 0) -> int:
        return x

    run = TaskRun(work.spec, (1,), {}, None, None)
    ctx = KeyContext(work, run, {"x": 1, "y": 0})
    assert INPUTS.compute_key(ctx, {"x": 1, "y": 0}, {}) == INPUTS.compute_key(
        ctx, {"x": 1, "y": 0}, {}
    )
    assert INPUTS.compute_key(ctx, {"x": 1}, {}) != INPUTS.compute_key(ctx, {"x": True}, {})
    assert INPUTS.compute_key(ctx, {}, {}) is None
    assert FlowParameters().compute_key(ctx, {"x": 1}, {}) is None
    assert RUN_ID.compute_key(ctx, {}, {}) is not None
    assert TaskSource().compute_key(ctx, {}, {}) is not None
    assert NO_CACHE.compute_key(ctx, {"x": 1}, {}) is None
    key = DEFAULT.compute_key(ctx, {"x": 1}, {})
    assert isinstance(key, str) and len(key) == 40
    assert repr(ctx).startswith("KeyContext(")


def test_a_retried_persisting_flow_does_not_rerun_completed_tasks() -> None:
    calls: list[str] = []
    attempts: list[int] = []

    @task
    def extract() -> int:
        calls.append("extract")
        return 1

    @flow(persist_result=True, retries=1)
    def pipeline() -> int:
        value = extract()
        attempts.append(value)
        if len(attempts) == 1:
            raise RuntimeError("transient")
        return value

    assert pipeline() == 1
    assert attempts == [1, 1]
    assert calls == ["extract"]  # the second attempt found it in the cache
