"""Storage faults: corrupt or truncated records, a full disk, a read-only directory. Each gives a
clear error or a recompute, never a wrong value, and leaves no half-written file behind.

The full disk and the read-only directory are injected where the local storage calls the OS
(its module's ``os``), so the tests run anywhere, root or not, with no mount."""

from __future__ import annotations

import errno
import logging
import os
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actorflow import task
from actorflow._cache import _storage

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT


class OsFaults(types.ModuleType):
    """The ``os`` module as the local storage sees it, with faults switched on and off:
    ``full`` (writes fail with ENOSPC after ``room`` bytes) and ``read_only`` (anything that
    would change the directory fails with EROFS)."""

    def __init__(self) -> None:
        super().__init__("os")
        self.full = False
        self.room = 0
        self.read_only = False
        self.path = os.path

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _refuse(self, what: str) -> None:
        if self.read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), what)

    def write(self, fd: int, data: Any) -> int:
        self._refuse("write")
        if self.full:
            if self.room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            n = min(self.room, len(data))
            self.room -= n
            return os.write(fd, bytes(data[:n]))
        return os.write(fd, data)

    def open(self, path: Any, flags: int, mode: int = 0o777) -> int:
        if flags & WRITE_FLAGS:
            self._refuse(os.fspath(path))
        return os.open(path, flags, mode)

    def makedirs(self, path: Any, mode: int = 0o777, exist_ok: bool = False) -> None:
        if not os.path.isdir(path):
            self._refuse(os.fspath(path))
        os.makedirs(path, mode, exist_ok)

    def link(self, src: Any, dst: Any) -> None:
        self._refuse(os.fspath(dst))
        os.link(src, dst)

    def replace(self, src: Any, dst: Any) -> None:
        self._refuse(os.fspath(dst))
        os.replace(src, dst)


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[OsFaults]:
    fake = OsFaults()
    monkeypatch.setattr(_storage, "os", fake)
    yield fake


def files(folder: Path) -> list[str]:
    """Every file under ``folder`` (temporary files included), relative to it."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def make_task(folder: Path, calls: list[int], in_memory: bool = False) -> Any:
    @task(
        result_storage=str(folder),
        cache_key_fn=lambda context, parameters: f"rel/{parameters['x']}",
        cache_result_in_memory=in_memory,  # read from storage, so that what is stored matters
        result_serializer="pickle",
    )
    def tenfold(x: int) -> int:
        calls.append(x)
        return 10 * x

    return tenfold


# -- corrupt records ---------------------------------------------------------------------------
def flip_a_payload_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


CORRUPTIONS = {
    "a flipped payload byte": flip_a_payload_byte,
    "a truncated payload": lambda data: data[:-3],
    "a truncated header": lambda data: data[: data.index(b"\n") + 5],
    "an empty file": lambda data: b"",
    "foreign bytes": lambda data: b"\x00\xffnot a record at all",
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_a_corrupt_record_is_recomputed_and_overwritten_never_returned(
    tmp_path: Path, corrupt: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    tenfold = make_task(tmp_path, calls)
    assert tenfold(4) == 40
    record = tmp_path / "rel" / "4"
    record.write_bytes(CORRUPTIONS[corrupt](record.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="actorflow.cache"):
        state = tenfold(4, return_state=True)
    assert state.name == "Completed" and state.result() == 40  # recomputed
    assert calls == [4, 4]
    warnings = [r.getMessage() for r in caplog.records if "rel/4" in r.getMessage()]
    assert warnings
    for warning in warnings:
        assert "is corrupt" in warning and "treated as a miss; it will be overwritten" in warning
    again = tenfold(4, return_state=True)  # the record was overwritten with a good one
    assert again.name == "Cached" and again.result() == 40
    assert calls == [4, 4]


def test_a_record_moved_under_another_key_is_not_taken_for_it(tmp_path: Path) -> None:
    calls: list[int] = []
    tenfold = make_task(tmp_path, calls)
    assert tenfold(1) == 10
    (tmp_path / "rel" / "2").write_bytes((tmp_path / "rel" / "1").read_bytes())  # well-formed
    assert tenfold(2) == 20  # not 10: the record names the key it belongs to
    assert calls == [1, 2]


# -- a full disk -------------------------------------------------------------------------------
@pytest.mark.parametrize("room", [0, 20], ids=["no room at all", "room for part of it"])
def test_a_full_disk_fails_the_run_clearly_and_leaves_no_partial_record(
    tmp_path: Path, faults: OsFaults, room: int
) -> None:
    calls: list[int] = []
    tenfold = make_task(tmp_path, calls)
    assert tenfold(1) == 10  # a record written before the disk filled up
    before = files(tmp_path)
    faults.full, faults.room = True, room
    state = tenfold(2, return_state=True)
    assert state.is_failed()
    assert state.message is not None
    assert "Could not persist the result to record 'rel/2'" in state.message
    assert "No space left on device" in state.message
    assert isinstance(state.data, OSError) and state.data.errno == errno.ENOSPC
    assert files(tmp_path) == before  # no temporary file, no partial record
    # Records written before are still served, and right.
    hit = tenfold(1, return_state=True)
    assert hit.name == "Cached" and hit.result() == 10
    # Space again: the run is computed and persisted.
    faults.full = False
    assert tenfold(2) == 20
    assert tenfold(2, return_state=True).name == "Cached"
    assert calls == [1, 2, 2]


# -- a read-only directory -----------------------------------------------------------------------
def test_a_read_only_directory_serves_its_records_and_fails_misses_clearly(
    tmp_path: Path, faults: OsFaults
) -> None:
    calls: list[int] = []
    tenfold = make_task(tmp_path, calls)
    assert tenfold(1) == 10
    before = files(tmp_path)
    faults.read_only = True
    hit = tenfold(1, return_state=True)
    assert hit.name == "Cached" and hit.result() == 10
    miss = tenfold(2, return_state=True)
    assert miss.is_failed()
    assert miss.message is not None and "Read-only file system" in miss.message
    assert calls == [1, 2]
    assert files(tmp_path) == before


def test_a_read_only_directory_never_written_to_fails_with_the_path(
    tmp_path: Path, faults: OsFaults
) -> None:
    # A fresh storage: even the lock file cannot be made.
    calls: list[int] = []
    tenfold = make_task(tmp_path / "fresh", calls)
    faults.read_only = True
    state = tenfold(1, return_state=True)
    assert state.is_failed()
    assert state.message is not None
    assert state.message.startswith("Could not read or lock the cache record 'rel/1': OSError")
    assert "Read-only file system" in state.message and str(tmp_path / "fresh") in state.message
    assert not (tmp_path / "fresh").exists()


@pytest.mark.anyio
async def test_a_full_disk_fails_an_async_run_clearly(
    anyio_backend: str, tmp_path: Path, faults: OsFaults
) -> None:
    @task(result_storage=str(tmp_path), cache_key_fn=lambda *_: "rel/async")
    async def value() -> int:
        return 7

    faults.full = True
    state = await value(return_state=True)
    assert state.is_failed()
    assert state.message is not None
    assert state.message.startswith("Could not persist the result to record 'rel/async'")
    assert "No space left on device" in state.message
    assert files(tmp_path) == [".lock"]  # the lock file, empty: no record, no temporary file
    faults.full = False
    assert await value() == 7
    assert (await value(return_state=True)).name == "Cached"
