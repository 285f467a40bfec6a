"""Where records live: the storage protocol, local directories, and choosing a storage.

Every storage offers the same few blocking operations on paths (``read``, ``create``,
``replace``) and a non-blocking per-path lock. Local writes go to a temporary file in the same
directory and are then linked or renamed into place, so a reader sees a whole record or none;
records carry a checksum, so even a record torn by a power cut is detected and recomputed
(which is why writes are not fsynced). The per-path lock is a POSIX record lock on one byte of
the storage's lock file: held by one process at a time, dropped by the kernel if it dies.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import threading
from pathlib import Path
from typing import Any, Protocol, final, runtime_checkable
from urllib.parse import unquote, urlsplit

from .._core import runtime
from ._paths import RecordPathError, check_path

__all__ = [
    "LocalStorage",
    "ResultStorage",
    "default_storage",
    "resolve_storage",
]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock on local storage
    fcntl = None  # type: ignore[assignment]  # fcntl is missing on Windows


@runtime_checkable
class ResultStorage(Protocol):
    """Blocking record I/O on paths, plus a per-path lock shared by every process using it."""

    #: Equal locations share in-memory records and compute-once locks within a process.
    location: str
    #: Whether async runs should move this storage's reads off the event loop.
    blocking_reads: bool

    def read(self, path: str) -> tuple[bytes, Any] | None:
        """The record's bytes and a version token, or ``None`` if there is none."""
        ...

    def create(self, path: str, data: bytes) -> bool:
        """Write ``data`` unless ``path`` exists; ``False`` if it did (the first write wins)."""
        ...

    def replace(self, path: str, data: bytes, version: Any) -> bool:
        """Overwrite ``path``, only if it is still at ``version`` (``None``: unconditionally);
        ``False`` if another writer got there first."""
        ...

    def try_lock(self, path: str) -> Any:
        """Take the lock for ``path`` without waiting: a handle, or ``None`` if it is held."""
        ...

    def unlock(self, handle: Any) -> None: ...


@final
class LocalStorage:
    """Records as files under ``basepath``."""

    blocking_reads = False  # local reads take microseconds; writes are moved off the loop

    def __init__(self, basepath: str | os.PathLike[str]) -> None:
        self.basepath = Path(basepath).expanduser().absolute()
        self.location = self.basepath.as_uri()
        self._root = str(self.basepath)
        self._dirs: set[str] = set()
        self._lock_fd: int | None = None
        self._fd_lock = threading.Lock()
        if os.path.isdir(os.path.join(self._root, ".transactions")):
            # A transaction's commit left unfinished by a killed process: finish it first.
            from .._transactions._atomic import recover

            recover(self)

    def __repr__(self) -> str:
        return f"LocalStorage({self._root!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStorage) and other.basepath == self.basepath

    def __hash__(self) -> int:
        return hash(self.basepath)

    def __getstate__(self) -> dict[str, Any]:
        return {"basepath": self.basepath}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["basepath"])

    def _file(self, path: str) -> str:
        return os.path.join(self._root, check_path(path))

    def _path_error(self, path: str, exc: OSError) -> RecordPathError:
        if isinstance(exc, IsADirectoryError) or os.path.isdir(self._file(path)):
            why = "it is a folder of other records"
        else:
            why = "a part of it is a record, not a folder (a key cannot be both)"
        return RecordPathError(f"record {path!r} in {self!r} cannot be stored: {why}")

    def read(self, path: str) -> tuple[bytes, Any] | None:
        try:
            with open(self._file(path), "rb") as f:
                return f.read(), None
        except FileNotFoundError:
            return None
        except (IsADirectoryError, NotADirectoryError) as exc:
            raise self._path_error(path, exc) from None

    def _temp_for(self, path: str, target: str, data: bytes) -> str:
        try:
            return self._temp(target, data)
        except (FileExistsError, NotADirectoryError) as exc:  # a folder on the way is a file
            raise self._path_error(path, exc) from None

    def _temp(self, target: str, data: bytes) -> str:
        folder, name = os.path.split(target)
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        temp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:  # the directory was removed meanwhile
            self._dirs.discard(folder)
            return self._temp(target, data)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            os.unlink(temp)
            raise
        os.close(fd)
        return temp

    def create(self, path: str, data: bytes) -> bool:
        target = self._file(path)
        temp = self._temp_for(path, target, data)
        try:
            os.link(temp, target)  # atomic, and fails if the target exists
            return True
        except FileExistsError:
            if os.path.isdir(target):
                raise self._path_error(path, IsADirectoryError()) from None
            return False
        except OSError:
            # A filesystem without hard links: rename instead (writers of one key hold its lock).
            os.replace(temp, target)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def replace(self, path: str, data: bytes, version: Any) -> bool:
        target = self._file(path)
        temp = self._temp_for(path, target, data)
        try:
            os.replace(temp, target)
        except IsADirectoryError as exc:
            os.unlink(temp)
            raise self._path_error(path, exc) from None
        except BaseException:
            os.unlink(temp)
            raise
        return True

    # Locks: one byte per key (at an offset hashed from the key) of one lock file, locked with
    # POSIX record locks. The kernel drops them when their process dies; the file stays open for
    # the life of the process, because closing any descriptor of it would drop them too.
    # Within a process, runs of one key are serialized before they get here.
    def _lock_file(self) -> int:
        fd = self._lock_fd
        if fd is None:
            with self._fd_lock:
                fd = self._lock_fd
                if fd is None:
                    os.makedirs(self._root, exist_ok=True)
                    name = os.path.join(self._root, ".lock")
                    fd = self._lock_fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o644)
        return fd

    def try_lock(self, path: str) -> Any:
        if fcntl is None:  # pragma: no cover
            return True
        offset = int.from_bytes(hashlib.sha256(check_path(path).encode()).digest()[:5], "big")
        fd = self._lock_file()
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return None
            raise
        return fd, offset

    def unlock(self, handle: Any) -> None:
        if fcntl is None or handle is True:  # pragma: no cover
            return
        fd, offset = handle
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)


# Storages built from names (paths, URLs), one per name in a process, so that clients and their
# connection pools are reused. Process-wide by nature, like the files and buckets they name: a
# slot of the runtime, so a forked child (and a test after ``runtime.reset()``) starts afresh.
@final
class _Storages:
    __slots__ = ("homes", "homes_lock", "named", "named_lock")

    def __init__(self) -> None:
        self.named: dict[str, ResultStorage] = {}
        self.homes: dict[str, ResultStorage] = {}  # ACTORFLOW_HOME -> its storage
        self.named_lock = threading.Lock()
        self.homes_lock = threading.Lock()  # taken before named_lock, never after


def _storages() -> _Storages:
    return runtime.slot("cache.storages", _Storages)


def default_storage() -> ResultStorage:
    """``$ACTORFLOW_HOME/storage`` (``~/.actorflow/storage`` by default), read at each use."""
    home = os.environ.get("ACTORFLOW_HOME") or "~/.actorflow"
    storages = _storages()
    storage = storages.homes.get(home)
    if storage is None:
        with storages.homes_lock:
            storage = storages.homes.get(home)
            if storage is None:
                storage = resolve_storage(str(Path(home).expanduser() / "storage"))
                storages.homes[home] = storage
    return storage


def resolve_storage(spec: Any) -> ResultStorage:
    """A storage from a ``result_storage`` option: a path, a URL, or a storage object."""
    if spec is None:
        return default_storage()
    storages = _storages()
    if type(spec) is str:
        storage = storages.named.get(spec)
        if storage is not None:
            return storage
    elif type(spec) is LocalStorage or isinstance(spec, ResultStorage):
        return spec
    elif isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(
            "result_storage must be a path, a URL such as 's3://bucket/prefix', or a storage "
            f"object, got {type(spec).__name__}"
        )
    with storages.named_lock:
        storage = storages.named.get(spec)
        if storage is None:
            storage = storages.named[spec] = _from_name(spec)
    return storage


def _from_name(spec: str) -> ResultStorage:
    if "://" not in spec:
        return LocalStorage(spec)
    parts = urlsplit(spec)
    if parts.scheme == "file":
        return LocalStorage(unquote(parts.path))
    from ._objectstore import ObjectStorage

    return ObjectStorage(spec)
