"""Records in object storage (S3, GCS, Azure) through obstore, an optional extra.

obstore is small and has no Python dependencies; its synchronous API is used from worker
threads, which works under asyncio and trio alike. Records are written create-if-absent, so
when several machines compute the same key the first result wins; an expired or unreadable
record is replaced only if it is still the version that was read (a conditional put on its
ETag). The per-key lock is a lease object, also created if absent, that a waiter may take over
once it has expired.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, final

import orjson

from ._paths import check_path

__all__ = ["ObjectStorage"]

_INSTALL = 'pip install "actorflow[s3]"'


def _obstore() -> Any:
    try:
        import obstore
    except ImportError:
        raise ImportError(
            f"Result storage in object stores (s3://, gs://, az://) needs obstore: {_INSTALL}"
        ) from None
    return obstore


@final
class ObjectStorage:
    """Records under the prefix of ``url`` (``s3://bucket/prefix``, ``gs://...``, ``az://...``).

    Keyword options go to ``obstore.store.from_url``: e.g. ``endpoint``, ``region``,
    ``access_key_id``, ``secret_access_key``, ``client_options={"allow_http": True}``.
    Without them, credentials and settings come from the environment (``AWS_*`` and so on).
    ``lock_lease`` is how long, in seconds, a crashed holder can keep others waiting.
    """

    blocking_reads = True

    def __init__(self, url: str, *, lock_lease: float = 300.0, **options: Any) -> None:
        _obstore()  # fail at configuration time, with the install hint
        self.url = url.rstrip("/")
        self.location = self.url
        self.options = options
        self.lock_lease = float(lock_lease)
        self._store: Any = None

    def __repr__(self) -> str:
        return f"ObjectStorage({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"] = None  # clients are rebuilt where the storage is used
        return state

    @property
    def store(self) -> Any:
        store = self._store
        if store is None:
            from obstore.store import from_url

            store = self._store = from_url(self.url, **self.options)
        return store

    def read(self, path: str) -> tuple[bytes, Any] | None:
        obstore = _obstore()
        try:
            result = obstore.get(self.store, check_path(path))
        except FileNotFoundError:
            return None
        return bytes(result.bytes()), result.meta.get("e_tag")

    def create(self, path: str, data: bytes) -> bool:
        obstore = _obstore()
        try:
            obstore.put(self.store, check_path(path), data, mode="create", use_multipart=False)
        except obstore.exceptions.AlreadyExistsError:
            return False
        return True

    def replace(self, path: str, data: bytes, version: Any) -> bool:
        obstore = _obstore()
        mode: Any = "overwrite" if version is None else {"e_tag": version}
        try:
            obstore.put(self.store, check_path(path), data, mode=mode, use_multipart=False)
        except (obstore.exceptions.PreconditionError, FileNotFoundError):
            return False
        return True

    def try_lock(self, path: str) -> Any:
        obstore = _obstore()
        lock_path = f".locks/{check_path(path)}.lock"
        owner = uuid.uuid4().hex
        body = orjson.dumps({"owner": owner, "expires": time.time() + self.lock_lease})
        try:
            obstore.put(self.store, lock_path, body, mode="create", use_multipart=False)
            return lock_path, owner
        except obstore.exceptions.AlreadyExistsError:
            pass
        held = self.read(lock_path)
        if held is None:
            return None  # released just now: the caller tries again
        data, etag = held
        try:
            expires = float(orjson.loads(data)["expires"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            expires = 0.0  # an unreadable lease is as good as expired
        if expires > time.time() or etag is None:
            return None
        # Take over an expired lease, unless someone else just did.
        return (lock_path, owner) if self.replace(lock_path, body, etag) else None

    def unlock(self, handle: Any) -> None:
        lock_path, owner = handle
        obstore = _obstore()
        held = self.read(lock_path)
        if held is None:
            return
        try:
            still_ours = orjson.loads(held[0]).get("owner") == owner
        except (orjson.JSONDecodeError, AttributeError):
            still_ours = False
        if still_ours:
            obstore.delete(self.store, lock_path)
