"""Atomic commits of several records to one local storage, and recovery after a crash.

A commit first writes every record's bytes into a folder of its own under the storage's
``.transactions`` folder, then writes the manifest (the list of record paths) beside it and
renames the manifest into place: that rename is the commit point. Only then are the records
renamed into place, one by one, and the manifest removed. A process killed before the commit
point leaves a folder without a manifest (rolled back: none of its records appear); one killed
after it leaves a manifest (rolled forward: the remaining records are moved into place). Either
is finished by :func:`recover` the next time the storage is opened, by any process.

While a commit is under way, its process holds the storage's lock for the commit's id, so a
recovery in another process leaves a live commit alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from .._core import runtime

__all__ = ["FOLDER", "commit_local", "is_local", "opened", "recover"]

FOLDER = ".transactions"
logger = logging.getLogger("actorflow.transactions")

#: Called after each step of a commit with the step's name (``"manifest"``, ``"record"``):
#: the seam tests use to kill a process in the middle of a commit.
after_step: Callable[[str], None] | None = None

# Commits under way in this process: POSIX locks do not exclude threads of one process.
_live: set[str] = set()
_live_lock = threading.Lock()


def commit_local(storage: Any, items: Sequence[tuple[str, bytes]]) -> None:
    """Write every ``(path, data)`` of ``items`` into the local ``storage``: all or none."""
    if len(items) == 1:
        path, data = items[0]
        storage.replace(path, data, None)  # one rename is atomic already
        return
    root = str(storage.basepath)
    folder = os.path.join(root, FOLDER)
    ident = f"{os.getpid()}-{secrets.token_hex(8)}"
    with _live_lock:
        _live.add(ident)
    lock = None
    try:
        while lock is None:  # the id is fresh: only a hash collision can make this wait
            lock = storage.try_lock(f"{FOLDER}/{ident}")
        work = os.path.join(folder, ident)
        os.makedirs(work)
        targets = []
        for i, (path, data) in enumerate(items):
            target = storage._file(path)  # checks the path before anything is written
            if os.path.isdir(target):
                raise storage._path_error(path, IsADirectoryError())
            with open(os.path.join(work, str(i)), "wb") as f:
                f.write(data)
            targets.append(path)
        manifest = os.path.join(folder, f"{ident}.manifest")
        with open(manifest + ".tmp", "wb") as f:
            f.write(orjson.dumps(targets))
        os.rename(manifest + ".tmp", manifest)  # the commit point
        _step("manifest")
        for i, path in enumerate(targets):
            _move(storage, os.path.join(work, str(i)), path)
            _step("record")
        os.unlink(manifest)
        with contextlib.suppress(OSError):
            os.rmdir(work)
    finally:
        if lock is not None:
            storage.unlock(lock)
        with _live_lock:
            _live.discard(ident)


def _step(name: str) -> None:
    hook = after_step
    if hook is not None:
        hook(name)


def _move(storage: Any, source: str, path: str) -> None:
    target = storage._file(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(source, target)


def recover(storage: Any) -> int:
    """Finish the commits that processes left unfinished in ``storage``: roll forward those
    past their commit point, discard the others. Returns how many were finished."""
    folder = os.path.join(str(storage.basepath), FOLDER)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    idents = {name.split(".", 1)[0] for name in names}
    finished = 0
    for ident in sorted(idents):
        with _live_lock:
            if ident in _live:
                continue
        lock = storage.try_lock(f"{FOLDER}/{ident}")
        if lock is None:
            continue  # its process is still committing
        try:
            if _recover_one(storage, folder, ident):
                finished += 1
        finally:
            storage.unlock(lock)
    return finished


def _recover_one(storage: Any, folder: str, ident: str) -> bool:
    work = os.path.join(folder, ident)
    manifest = os.path.join(folder, f"{ident}.manifest")
    try:
        with open(manifest, "rb") as f:
            targets: list[str] = orjson.loads(f.read())
    except FileNotFoundError:
        targets = []
    except orjson.JSONDecodeError:  # cannot happen: the manifest is renamed in whole
        targets = []
    else:
        for i, path in enumerate(targets):
            source = os.path.join(work, str(i))
            if os.path.exists(source):
                try:
                    _move(storage, source, path)
                except (OSError, ValueError) as exc:  # the place became a folder meanwhile
                    logger.error(
                        "finishing a transaction's commit in %s: record %r cannot be stored "
                        "(%s); it is dropped",
                        storage,
                        path,
                        exc,
                    )
    with contextlib.suppress(FileNotFoundError):
        os.unlink(manifest)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(manifest + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    return True


def is_local(storage: Any) -> bool:
    """Whether ``storage`` is a local storage (records as files under ``basepath``)."""
    return getattr(storage, "basepath", None) is not None and hasattr(storage, "_file")


class _Recovered:
    """Locations this process has finished killed commits in (a slot of the runtime)."""

    __slots__ = ("locations", "lock")

    def __init__(self) -> None:
        self.locations: set[str] = set()
        self.lock = threading.Lock()


def opened(storage: Any) -> None:
    """Before a transaction first uses a local storage in this process: finish the commits a
    killed process left in it."""
    location = storage.location
    done = runtime.slot("transactions.recovered", _Recovered)
    if location in done.locations:
        return
    with done.lock:
        if location in done.locations:
            return
        if is_local(storage):
            recover(storage)
        done.locations.add(location)
