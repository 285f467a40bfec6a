"""The package stays ruff-clean and passes mypy --strict (both installed by the test extra)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_check() -> None:
    result = run("ruff", "check", "actorflow", "tests", "benchmarks", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run("ruff", "format", "--check", "actorflow", "tests", "benchmarks", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run("mypy", "actorflow")
    assert result.returncode == 0, result.stdout + result.stderr


def _imports_of(path: Path, module: str, modules: set[str]) -> set[str]:
    """The actorflow modules ``module`` (in the file ``path``) imports anywhere: at module level,
    inside functions, and under ``if TYPE_CHECKING:`` alike."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                # ``from package import submodule`` imports the submodule.
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {name for name in found if name in modules and name != module}


def _import_graph() -> dict[str, list[str]]:
    """Each of actorflow's modules, and the modules of actorflow it imports."""
    files = {}
    for path in sorted((ROOT / "actorflow").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    modules = set(files)
    return {name: sorted(_imports_of(path, name, modules)) for name, path in files.items()}


def _import_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components (of more than one module) of ``graph``."""
    # Tarjan's algorithm, iterative (no recursion limit to think about).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph[target])))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def _one_cycle(component: list[str], graph: dict[str, list[str]]) -> list[str]:
    """A shortest import cycle through the first module of ``component``."""
    start, inside = component[0], set(component)
    previous: dict[str, str] = {}
    queue = [start]
    while start not in previous:
        node = queue.pop(0)
        for target in graph[node]:
            if target in inside and target not in previous:
                previous[target] = node
                queue.append(target)
    path = [start]
    while len(path) == 1 or path[-1] != start:
        path.append(previous[path[-1]])
    return path[::-1]


def test_import_graph_is_read() -> None:
    """The graph the next test checks holds imports of every kind (checked on known ones)."""
    graph = _import_graph()
    assert "actorflow._core._states" in graph["actorflow._core._actor"]  # module level
    assert "actorflow._core._task_run" in graph["actorflow._core._generators"]  # in a function
    assert "actorflow._core._task_run" in graph["actorflow._core._runner"]  # TYPE_CHECKING
    assert "actorflow._core" in graph["actorflow._runners._body"]  # absolute, in a function
    assert "actorflow._core" in graph["actorflow._cache._keys"]  # ``from .. import``
    assert "actorflow._core._context" in graph["actorflow._core._flow_run"]  # ``from . import``


def test_no_import_cycle() -> None:
    """actorflow's modules form layers: no import cycle, counting imports inside functions and
    under ``if TYPE_CHECKING:`` too (a lazy or type-only import does not make a cycle honest)."""
    graph = _import_graph()
    cycles = _import_cycles(graph)
    assert not cycles, "import cycles among actorflow's modules:\n" + "\n".join(
        f"{len(c)} modules: {', '.join(c)}\n  e.g. {' -> '.join(_one_cycle(c, graph))}"
        for c in cycles
    )


#: What a first flow run (with a task) must not load, journal or not: the caches (for flows that
#: do not persist results), runners, queue, their libraries, and what only some runs need.
_LAZY = [
    "actorflow._cache",
    "actorflow._queue",
    "actorflow._runners",
    "actorflow._serving",
    "actorflow._transactions",
    "actorflow._journal._records",
    "actorflow._journal._ui",
    "actorflow._core._statistics",
    "actorflow._core._events",
    "random",
    "multiprocessing",
    "pickle",
    "trio",
    "distributed",
    "pydantic",
    "greenlet",
    "pathlib",
    "urllib.parse",
    "shutil",
    "asyncio",  # a sync script runs no event loop of its own
    "socket",
]
#: And with the journal off: the journal's store and its libraries too.
_LAZY_WITHOUT_JOURNAL = [
    "actorflow._journal._store",
    "actorflow._journal._queries",
    "sqlite3",
    "orjson",
    "dataclasses",  # orjson loads it
]


#: And in a script of flows alone: tasks and what only they need.
_LAZY_WITHOUT_TASKS = [
    "actorflow._tasks",
    "actorflow._identity",
    "actorflow._core._task_spec",
    "hashlib",
]


def _modules_a_first_run_loads(journal: str, home: Path, task: bool = True) -> list[str]:
    body = "one()" if task else "1"
    code = (
        "import sys\n"
        "from actorflow import flow\n"
        + ("from actorflow import task\n@task\ndef one():\n    return 1\n" if task else "")
        + f"@flow\ndef small():\n    return {body}\n"
        "assert small() == 1\n"
        # The journal's writer records the run (its task key too) before the modules are listed.
        "from actorflow._journal import _registry\n"
        "_registry.flush_current()\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "ACTORFLOW_JOURNAL": journal, "ACTORFLOW_HOME": str(home)}
    # A script file, as users run them: a task's source can be read (its key hashes it).
    script = home / "first_run.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, env=env
    ).stdout
    return out.split()


def test_importing_actorflow_leaves_optional_parts_unloaded(tmp_path: Path) -> None:
    # Start-up pays only for what a first flow run needs.
    loaded = _modules_a_first_run_loads("off", tmp_path)
    assert "actorflow._flows" in loaded  # the check sees what was loaded
    lazy = _LAZY + _LAZY_WITHOUT_JOURNAL
    assert [m for m in lazy if m in loaded] == []


@pytest.mark.parametrize("journal", ["off", "on"])
def test_a_script_of_flows_alone_loads_no_task_machinery(journal: str, tmp_path: Path) -> None:
    loaded = _modules_a_first_run_loads(journal, tmp_path, task=False)
    assert "actorflow._flows" in loaded
    lazy = _LAZY + _LAZY_WITHOUT_TASKS + (_LAZY_WITHOUT_JOURNAL if journal == "off" else [])
    assert [m for m in lazy if m in loaded] == []


def test_a_journaled_first_run_loads_only_the_journal_writer(tmp_path: Path) -> None:
    # The journal (on by default) loads its writer at the first run, not its readers' records.
    loaded = _modules_a_first_run_loads("on", tmp_path)
    assert "actorflow._journal._store" in loaded and "sqlite3" in loaded
    assert (tmp_path / "journal.db").is_file()
    assert [m for m in _LAZY if m in loaded] == []


_ASYNC_AFTER_SYNC = """
import sys
from actorflow import flow, task

@task
def double(x):
    return 2 * x

@task
async def adouble(x):
    return 2 * x

@flow
def sync_flow(xs):
    return double.map(xs).result()

assert sync_flow([1, 2]) == [2, 4]
assert "asyncio" not in sys.modules, "a sync flow loaded asyncio"

import asyncio

@flow
async def async_flow(xs):
    futures = [adouble.submit(x) for x in xs]
    gathered = await asyncio.gather(*(adouble(x) for x in xs))
    return [await f for f in futures] + list(gathered)

assert asyncio.run(async_flow([1, 2])) == [2, 4, 2, 4]

@flow
def sync_flow_of_async_tasks(xs):
    return [f.result() for f in adouble.map(xs)]

assert sync_flow_of_async_tasks([3]) == [6]
print("ok")
"""


@pytest.mark.parametrize("journal", ["off", "on"])
def test_async_flows_run_after_a_sync_script_started_without_asyncio(
    journal: str, tmp_path: Path
) -> None:
    # asyncio is loaded by whoever first runs an event loop; the runtime then finds it.
    env = {**os.environ, "ACTORFLOW_JOURNAL": journal, "ACTORFLOW_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", _ASYNC_AFTER_SYNC], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "ok"
