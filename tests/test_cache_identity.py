"""Cache records belong to one task: distinct tasks never share them, a task finds its own in
every process, including a script run as ``__main__`` and imported by name elsewhere."""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from support import child_env

from actorflow import flow, task
from actorflow.cache_policies import DEFAULT, INPUTS

TABLE_MODULE = """
from actorflow import task
from actorflow.cache_policies import INPUTS

@task(cache_policy=INPUTS, persist_result=True)
def load(day):
    return f"{TABLE}:{day}"
"""


def _write_modules(folder: Path) -> None:
    for table in ("customers", "orders"):
        (folder / f"{table}.py").write_text(f"TABLE = {table!r}\n" + TABLE_MODULE)


def _env(home: Path, *paths: Path) -> dict[str, str]:
    return child_env(*paths, ACTORFLOW_HOME=str(home))


def _run(folder: Path, code: str, home: Path) -> str:
    env = _env(home, folder)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


BOTH_TABLES = """
    from actorflow import flow, RunRecorder
    import customers, orders

    @flow
    def both(day):
        return customers.load(day), orders.load(day)

    with RunRecorder() as rec:
        values = both("mon")
    states = [e.state.name for e in rec.events if e.run_kind == "task" and e.state.is_final()]
    print(values, states)
"""


def test_same_named_tasks_in_two_modules_keep_their_own_records(tmp_path: Path) -> None:
    _write_modules(tmp_path)
    home = tmp_path / "home"
    # The same source, the same inputs, two modules: two records, in this process and the next.
    first = _run(tmp_path, BOTH_TABLES, home)
    assert first == "('customers:mon', 'orders:mon') ['Completed', 'Completed']"
    second = _run(tmp_path, BOTH_TABLES, home)
    assert second == "('customers:mon', 'orders:mon') ['Cached', 'Cached']"


def test_partials_of_one_function_are_distinct_tasks() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    plus_one = task(functools.partial(add, 1), cache_policy=INPUTS, persist_result=True)
    plus_two = task(functools.partial(add, 2), cache_policy=INPUTS, persist_result=True)
    assert (plus_one(10), plus_two(10)) == (11, 12)
    assert (plus_one(10), plus_two(10)) == (11, 12)  # now each from its own record
    assert plus_one.task_key != plus_two.task_key


def test_tasks_made_by_a_factory_are_told_apart_by_their_closure() -> None:
    def make_scaler(k: int):  # type: ignore[no-untyped-def]
        @task(persist_result=True)
        def scale(x: int) -> int:
            return x * k

        return scale

    @flow
    def scaled() -> tuple[int, int, int]:
        return make_scaler(2)(5), make_scaler(3)(5), make_scaler(2)(5)

    assert scaled() == (10, 15, 10)
    assert make_scaler(2).task_key == make_scaler(2).task_key != make_scaler(3).task_key


def test_task_name_is_part_of_the_identity() -> None:
    def double(x: int) -> int:
        return 2 * x

    a = task(double, name="a", cache_policy=INPUTS, persist_result=True)
    b = task(double, name="b", cache_policy=INPUTS, persist_result=True)
    assert a.task_key != b.task_key
    assert a.cache is not None and b.cache is not None
    assert a.cache.scope() != b.cache.scope()


def test_closure_over_unhashable_values_is_cached_only_within_its_task() -> None:
    calls: list[int] = []

    def make(lock: threading.Lock):  # type: ignore[no-untyped-def]
        @task(cache_policy=INPUTS, persist_result=True)
        def guarded(x: int) -> int:
            with lock:
                calls.append(x)
            return x

        return guarded

    first, second = make(threading.Lock()), make(threading.Lock())
    assert [first(1), first(1), second(1)] == [1, 1, 1]
    assert calls == [1, 1]  # `first` hit its own record; `second` never saw it


SCRIPT = """
import sys
from actorflow import flow, task, RunRecorder
from actorflow.cache_policies import INPUTS

@task(cache_policy=INPUTS, persist_result=True)
def square(x):
    return x * x

def main():
    with RunRecorder() as rec:
        value = square(7)
    print(value, [e.state.name for e in rec.events if e.state.is_final()], square.task_key)

if __name__ == "__main__":
    main()
"""


def test_a_script_run_as_main_and_imported_by_name_is_one_task(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text(SCRIPT)
    home = tmp_path / "home"
    env = _env(home)
    as_script = subprocess.run(
        [sys.executable, "jobs.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert as_script.returncode == 0, as_script.stderr
    key = as_script.stdout.split()[-1]
    assert as_script.stdout.strip() == f"49 ['Completed'] {key}"
    # Another process imports the script by its module name: the same task, the same record.
    assert _run(tmp_path, "import jobs; jobs.main()", home) == f"49 ['Cached'] {key}"


def test_import_name_of_a_script_in_a_package(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "etl.py").write_text(
        "from actorflow._identity import import_name\nprint(import_name('__main__'))\n"
    )
    result = subprocess.run(
        [sys.executable, str(package / "etl.py")],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "pkg.etl"
    from actorflow._identity import import_name

    assert import_name("some.module") == "some.module"


@pytest.mark.parametrize("policy", [INPUTS, DEFAULT])
def test_huge_int_argument_is_hashed(policy: object) -> None:
    @task(cache_policy=policy, persist_result=True)
    def digits(n: int) -> int:
        return n.bit_length()

    @flow
    def run() -> tuple[int, int]:
        return digits(10**5000), digits(10**5000 + 1)

    assert run() == ((10**5000).bit_length(), (10**5000 + 1).bit_length())
