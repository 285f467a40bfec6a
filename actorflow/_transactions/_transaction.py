"""Transactions: groups of work that commit together or roll back together.

A :class:`Transaction` stages a value (a task run's result), collects the transactions of the
runs that complete inside it as its children, and on exit commits (children first, then its own
commit hooks, then the records of the whole tree, written at once) or rolls back (its rollback
hooks, newest first, then its children's, newest first). A task run's own transaction is made
when the run is made (:func:`attach`), its parent the transaction current then; the engine
stages the run's result in it when the run completes (``_stage_run``) and rolls it back when
the run fails (``_run_failed``). A flow run with task runs that have commit or rollback hooks
outside any explicit transaction gets an implicit one: its body's error rolls them back, its
success commits them. Records of runs in such an implicit transaction, or in none, are written
when the run completes, as the cache writes them; in an explicit transaction they are written
when it commits, all of them or (on local storage, even if the process is killed) none.

Commit and rollback are written once, as generators that yield what a hook returned when it
must be awaited; :func:`_run_sync` and :func:`_run_async` carry them out.
"""

from __future__ import annotations

import copy
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from .._core import (
    ConfigurationError,
    MissingContextError,
    SerializationError,
    current_run,
    get_run_logger,
    logger_for,
    run_coroutine_sync,
)
from ._atomic import opened
from ._modes import CommitMode, IsolationLevel, TransactionState

__all__ = [
    "AsyncTransaction",
    "CommitMode",
    "IsolationLevel",
    "Transaction",
    "TransactionState",
    "atransaction",
    "attach",
    "get_transaction",
    "transaction",
]

T = TypeVar("T")
Steps = Generator[Awaitable[Any], Any, T]
Hook = Callable[["Transaction"], Any]

_logger = logging.getLogger("actorflow.transactions")
_run_logger = logging.getLogger("actorflow.task_runs")
_current: ContextVar[Transaction | None] = ContextVar("actorflow_transaction", default=None)
_NOT_SET: Any = object()
_EMPTY_LIST: list[Any] = []
_EMPTY_DICT: dict[str, Any] = {}
# Guards the children and members of every transaction (added to from worker threads).
_tree_lock = threading.Lock()


_DONE = (TransactionState.COMMITTED, TransactionState.ROLLED_BACK)


def get_transaction() -> Transaction | None:
    """The innermost open transaction (inside a task run's body, the run's own), or ``None``."""
    return _innermost(True)


def _innermost(make: bool) -> Transaction | None:
    txn = _current.get()
    run: Any = current_run.get()
    if run is not None and not run.is_flow:
        own = getattr(run, "txn", _NOT_SET)  # a body in a worker process has no transaction
        if own is None and txn is None and make:
            # A run outside any transaction gets its own when its body asks for it, as every
            # Prefect task run has one (made here, not per run: most never ask).
            policy = _policy_of(getattr(run.spec, "cache", None))
            own = run.txn = Transaction._for_run(run, None, ((), ()), policy)
        if own is not None and own is not _NOT_SET and (txn is None or txn is own._parent):
            return own  # type: ignore[no-any-return]  # a Transaction: only this module sets it
    return txn


class _RunStandIn:
    """Who a task run's transaction logs as, once the run itself is let go: its log lines are
    the run's (the journal records them with it)."""

    __slots__ = ("_int_id", "flow", "name", "spec")
    is_flow = False
    parent = None

    def __init__(self, int_id: int, name: str, spec: Any, flow: Any) -> None:
        self._int_id = int_id
        self.name = name
        self.spec = spec
        self.flow = flow

    @property
    def id(self) -> Any:
        import uuid

        return uuid.UUID(int=self._int_id)


def _policy_of(cache: Any) -> Any:
    """The cache policy of a task's cache, if it has one already: a cache made on demand (a task
    that says nothing of caching) is not built for the asking."""
    try:
        return object.__getattribute__(cache, "policy")
    except AttributeError:
        return None


def _hook_name(hook: Any) -> str:
    name = getattr(hook, "__name__", None)
    if name is None and hasattr(hook, "func"):
        name = getattr(hook.func, "__name__", None)
    return str(name or type(hook).__name__)


class Transaction:
    """A unit of work that commits or rolls back as one (see the module's documentation)."""

    def __init__(
        self,
        key: str | None = None,
        store: Any = None,
        commit_mode: CommitMode | None = None,
        isolation_level: IsolationLevel | None = None,
        overwrite: bool = False,
        write_on_commit: bool = True,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        if commit_mode is not None and not isinstance(commit_mode, CommitMode):
            raise TypeError(f"commit_mode must be a CommitMode, got {commit_mode!r}")
        if isolation_level is not None and not isinstance(isolation_level, IsolationLevel):
            raise TypeError(f"isolation_level must be an IsolationLevel, got {isolation_level!r}")
        if key is not None and not isinstance(key, str):
            raise TypeError(f"a transaction's key must be a str, got {type(key).__name__}")
        self.key = key
        self.store = store
        self.commit_mode = commit_mode
        self.isolation_level = isolation_level
        self.overwrite = overwrite
        self.write_on_commit = write_on_commit
        self.logger = logger or _logger
        self.state = TransactionState.PENDING
        self.children = []
        self.on_commit_hooks = []
        self.on_rollback_hooks = []
        self._stored_values = {}

    # Defaults kept on the class, so that the transaction of each task run (made per run, see
    # ``_for_run``) sets only what it uses. The empty collections are shared and never mutated:
    # each transaction makes its own on first use.
    key: str | None = None
    store: Any = None
    commit_mode: CommitMode | None = None
    isolation_level: IsolationLevel | None = None
    overwrite = False
    write_on_commit = True
    logger: logging.Logger | logging.LoggerAdapter[Any] = _logger
    state = TransactionState.PENDING
    children: list[Transaction] = _EMPTY_LIST
    on_commit_hooks: list[Hook] = _EMPTY_LIST
    on_rollback_hooks: list[Hook] = _EMPTY_LIST
    _stored_values: dict[str, Any] = _EMPTY_DICT
    _staged_value: Any = None
    _token: Token[Transaction | None] | None = None
    _parent: Transaction | None = None
    _entered = False
    _implicit = False
    _locked = False
    #: Runs submitted inside this transaction: waited for before it ends.
    _members: list[Any] = _EMPTY_LIST
    #: For a task run's transaction: the run until it ends (then let go, so that a long
    #: transaction does not keep every run alive), its task's name and kind, and its cache
    #: slot when its record is staged.
    _run: Any = None
    _task_name: str | None = None
    _is_async = False
    #: ``(int id, name, spec, flow run)`` of a task run: whom its log lines belong to.
    _who: tuple[int, str, Any, Any] | None = None
    _slot: Any = None

    def _log(self) -> Any:
        """This transaction's logger: a task run's own logs as the run."""
        who = self._who
        if who is None:
            return self.logger
        return logger_for(_RunStandIn(*who))

    def _note(self, what: str) -> None:
        """A task run's transaction committed or rolled back: an event of the run. The console
        shows it at DEBUG; the run journal records it whatever the console's level."""
        if self._who is None:
            return
        if _run_logger.isEnabledFor(logging.DEBUG):
            self._log().debug("Transaction %s", what)  # the journal's handler gets it too
            return
        from .._journal._registry import current

        journal = current()
        if journal is not None:
            message, kwargs = self._log().process(f"Transaction {what}", {})
            record = _run_logger.makeRecord(
                _run_logger.name, logging.DEBUG, __file__, 0, message, (), None,
                extra=kwargs.get("extra"),
            )  # fmt: skip
            journal.log(record)

    @property
    def _holder(self) -> str:
        return f"transaction-{id(self):x}"

    def __repr__(self) -> str:
        return f"Transaction(key={self.key!r}, state={self.state.name})"

    # -- values ---------------------------------------------------------------------------------
    def set(self, name: str, value: Any) -> None:
        """Keep ``value`` under ``name`` for this transaction's hooks and children."""
        if self._stored_values is _EMPTY_DICT:
            self._stored_values = {}
        self._stored_values[name] = value

    def get(self, name: str, default: Any = _NOT_SET) -> Any:
        """A copy of the value under ``name``, looked up in this transaction, then its parents;
        ``default`` if none has it, else ``ValueError``."""
        txn: Transaction | None = self
        while txn is not None:
            if name in txn._stored_values:
                return copy.deepcopy(txn._stored_values[name])
            txn = txn._parent
        if default is not _NOT_SET:
            return default
        raise ValueError(f"Could not retrieve value for unknown key: {name}")

    # -- state ----------------------------------------------------------------------------------
    def is_committed(self) -> bool:
        return self.state is TransactionState.COMMITTED

    def is_rolled_back(self) -> bool:
        return self.state is TransactionState.ROLLED_BACK

    def is_staged(self) -> bool:
        return self.state is TransactionState.STAGED

    def is_pending(self) -> bool:
        return self.state is TransactionState.PENDING

    def is_active(self) -> bool:
        return self.state is TransactionState.ACTIVE

    def get_parent(self) -> Transaction | None:
        parent = self._parent
        if parent is not None and parent._implicit:
            return None  # a flow run's implicit transaction is not shown
        return parent

    def add_child(self, transaction: Transaction) -> None:
        self._adopt(transaction)

    def _adopt(self, transaction: Transaction) -> bool:
        """Add a child; ``True`` if this transaction has already rolled back (then the child
        must roll back too: a sibling's failure on another thread got here first)."""
        with _tree_lock:
            if self.children is _EMPTY_LIST:
                self.children = [transaction]
            else:
                self.children.append(transaction)
            return self.state is TransactionState.ROLLED_BACK

    def stage(
        self,
        value: Any,
        on_rollback_hooks: list[Hook] | None = None,
        on_commit_hooks: list[Hook] | None = None,
    ) -> None:
        """Stage ``value`` to be written on commit, with hooks for the commit or rollback."""
        if self.state is not TransactionState.COMMITTED:
            self._staged_value = value
            if on_rollback_hooks:
                self.on_rollback_hooks = [*self.on_rollback_hooks, *on_rollback_hooks]
            if on_commit_hooks:
                self.on_commit_hooks = [*self.on_commit_hooks, *on_commit_hooks]
            self.state = TransactionState.STAGED

    def read(self) -> Any:
        """The committed record under this transaction's key (a ``ResultRecord``), or
        ``None``."""
        if self.store is not None and self.key:
            return self.store.read(self.key, holder=self._holder)
        return None

    # -- entering -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        if self._entered:
            raise RuntimeError("Context already entered. Context enter calls cannot be nested.")
        parent = get_transaction()
        self._parent = parent
        if self.commit_mode is None:
            self.commit_mode = parent.commit_mode if parent is not None else CommitMode.LAZY
        if self.isolation_level is None:
            self.isolation_level = (
                parent.isolation_level if parent is not None else IsolationLevel.READ_COMMITTED
            )
        level = self.isolation_level
        assert level is not None  # set just above
        if self.store is not None and self.key and not self.store.supports_isolation_level(level):
            raise ConfigurationError(
                f"Isolation level {level.name} is not supported by provided "
                "configuration. Please ensure you've provided a lock file directory or lock "
                "manager when using the SERIALIZABLE isolation level."
            )
        self._entered = True
        self.state = TransactionState.ACTIVE

    def _serializable(self) -> bool:
        return (
            self.store is not None
            and bool(self.key)
            and self.isolation_level is IsolationLevel.SERIALIZABLE
        )

    def _begun(self) -> None:
        if not self.overwrite and self.store is not None and self.key:
            if self.store.exists(self.key):
                self.state = TransactionState.COMMITTED

    def begin(self) -> None:
        """Take the key's lock under ``SERIALIZABLE``; a key with a record is committed."""
        if self._serializable():
            self.logger.debug("Acquiring lock for transaction %r", self.key)
            self.store.acquire_lock(self.key, holder=self._holder)
            self._locked = True
        self._begun()

    def __enter__(self) -> Transaction:
        self._prepare()
        self.begin()
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._token is None:
            raise RuntimeError("Asymmetric use of context. Context exit called without an enter.")
        interrupted = exc_type is not None and not issubclass(exc_type, Exception)
        if not interrupted:
            self._wait_members()
        _run_sync(self._exit_steps(exc_type is not None))

    # -- members: runs submitted inside -------------------------------------------------------
    def _add_member(self, run: Any) -> None:
        with _tree_lock:
            if self._members is _EMPTY_LIST:
                self._members = [run]
            else:
                self._members.append(run)

    def _take_members(self) -> list[Any]:
        with _tree_lock:
            members, self._members = self._members, _EMPTY_LIST
        return members

    def _wait_members(self) -> None:
        while True:
            members = self._take_members()
            if not members:
                return
            for run in members:
                run.wait_sync()

    async def _await_members(self) -> None:
        while True:
            members = self._take_members()
            if not members:
                return
            for run in members:
                await run.wait_async()

    # -- exit, commit, rollback (as steps) ------------------------------------------------------
    def _exit_steps(self, failed: bool) -> Steps[None]:
        parent = self._parent
        try:
            if failed:
                yield from self._rollback_steps()
                return
            if self.commit_mode is CommitMode.EAGER:
                yield from self._commit_steps(None)
            if parent is not None:
                return  # the parent takes responsibility
            if self.commit_mode is CommitMode.OFF:
                yield from self._rollback_steps()  # nobody committed it
            elif self.commit_mode is CommitMode.LAZY:
                yield from self._commit_steps(None)
        finally:
            token, self._token = self._token, None
            if token is not None:
                _current.reset(token)
            if parent is not None:
                parent.add_child(self)
                if self.state is TransactionState.ROLLED_BACK:
                    yield from parent._rollback_steps()

    def _run_hook(self, hook: Hook, kind: str) -> Steps[None]:
        name = _hook_name(hook)
        name_of_task = self._task_name
        of = f" of task {name_of_task!r}" if name_of_task is not None else ""
        log = getattr(hook, "log_on_run", True)
        logger = self._log()
        if log:
            logger.info("Running %s hook %r%s", kind, name, of)
        try:
            result = hook(self)
            if inspect.isawaitable(result):
                yield result
        except Exception:
            logger.exception("An error was encountered while running %s hook %r%s", kind, name, of)
            raise
        if log:
            logger.info("%s hook %r%s finished running successfully", kind.capitalize(), name, of)

    def _commit_steps(self, writes: list[tuple[Transaction, Any]] | None) -> Steps[bool]:
        """Commit hooks of this tree, children first; then (at the root of the commit) the
        records of the tree at once, and the tree is committed."""
        if self.state in _DONE:
            self._release()
            return False
        root = writes is None
        batch: list[tuple[Transaction, Any]] = [] if writes is None else writes
        mark = len(batch)
        try:
            for child in list(self.children):
                yield from child._commit_steps(batch)
            for hook in list(self.on_commit_hooks):
                yield from self._run_hook(hook, "commit")
            batch.append((self, self._record()))
        except SerializationError as exc:
            self.logger.warning(
                "Encountered an error while serializing result for transaction %r: %s Code "
                "execution will continue, but the transaction will not be committed.",
                self.key,
                exc,
            )
            del batch[mark:]
            yield from self._rollback_steps()
            return False
        except Exception:
            self.logger.exception(
                "An error was encountered while committing transaction %r", self.key
            )
            del batch[mark:]
            yield from self._rollback_steps()
            return False
        if not root:
            return True
        try:
            _write_batch([item for _, item in batch if item is not None])
        except Exception:
            self.logger.exception(
                "An error was encountered while committing transaction %r: no record of it "
                "was written",
                self.key,
            )
            yield from self._rollback_steps()
            return False
        for txn, item in batch:
            txn.state = TransactionState.COMMITTED
            if item is not None and item[3] is not None:
                item[3]()
            txn._release()
            txn._note("committed")
        return True

    def _record(self) -> Any:
        """What committing writes for this transaction: ``(storage, path, data, after)`` or
        ``None``."""
        slot = self._slot
        if slot is not None:
            return _slot_record(slot, self._staged_value)
        store = self.store
        if store is not None and self.key and self.write_on_commit:
            storage = store.storage
            data = store.encode(self.key, self._staged_value)
            from .._cache._shared import shared_for

            shared = shared_for(storage.location)
            key = self.key
            return (storage, key, data, lambda: shared.forget(key))
        return None

    def _rollback_steps(self) -> Steps[bool]:
        if self.state in _DONE:
            self._release()  # a SERIALIZABLE key found committed is still held
            return False
        try:
            for hook in reversed(list(self.on_rollback_hooks)):
                yield from self._run_hook(hook, "rollback")
            with _tree_lock:  # children added from now on roll back themselves (_adopt)
                self.state = TransactionState.ROLLED_BACK
                children = list(self.children)
            self._note("rolled back")
            for child in reversed(children):
                yield from child._rollback_steps()
            return True
        except Exception:
            self.logger.exception(
                "An error was encountered while rolling back transaction %r", self.key
            )
            return False
        finally:
            self._release()

    def _release(self) -> None:
        held, self._slot_lock = self._slot_lock, None
        if held is not None:
            storage, handle = held
            storage.unlock(handle)
        if self._locked:
            self._locked = False
            self.logger.debug("Releasing lock for transaction %r", self.key)
            if self.store is not None and self.key:
                self.store.release_lock(self.key, holder=self._holder)

    def commit(self) -> bool:
        """Commit now: children, commit hooks, then every record of the tree at once."""
        return _run_sync(self._commit_steps(None))

    def rollback(self) -> bool:
        """Roll back now: rollback hooks newest first, then the children's."""
        return _run_sync(self._rollback_steps())

    # -- a task run's transaction (called by the engine) ---------------------------------------
    @classmethod
    def _for_run(
        cls, run: Any, parent: Transaction | None, hooks: tuple[Any, Any], policy: Any
    ) -> Transaction:
        txn = cls.__new__(cls)
        txn._run = run
        txn._task_name = run.spec.name
        txn._who = (run._int_id, run.name, run.spec, run.flow)
        txn._is_async = run.spec.is_async
        txn._parent = parent
        if parent is not None and (
            parent.defers_write or (parent._task_name is None and not parent._implicit)
        ):
            txn.defers_write = True
        txn.commit_mode = parent.commit_mode if parent is not None else CommitMode.LAZY
        level = None if policy is None else policy.isolation_level
        if level is None:
            level = parent.isolation_level if parent is not None else None
        txn.isolation_level = level or IsolationLevel.READ_COMMITTED
        txn._hooks = hooks
        txn._policy = policy
        txn.state = TransactionState.ACTIVE
        return txn

    _hooks: tuple[Any, Any] = ((), ())
    _policy: Any = None
    #: ``(storage, handle)``: the storage lock of a SERIALIZABLE run's key, held until the end.
    _slot_lock: Any = None

    #: Whether the run's record waits for a commit: inside a transaction opened with
    #: ``transaction()`` (at any depth), not only inside other runs' or a flow's.
    defers_write = False

    def _lock_slot(self, slot: Any) -> Any:
        """Under ``SERIALIZABLE``, take the run's key before the cache is consulted."""
        if self.isolation_level is not IsolationLevel.SERIALIZABLE:
            return None
        from ._store import ResultStore

        manager = self._policy.lock_manager if self._policy is not None else None
        parent = self._parent
        if manager is None and parent is not None and parent.store is not None:
            manager = parent.store.lock_manager
        if manager is None:
            raise ConfigurationError(
                "Isolation level SERIALIZABLE is not supported by provided configuration. "
                "Please ensure you've provided a lock file directory or lock manager when "
                "using the SERIALIZABLE isolation level."
            )
        self.key = slot.path
        self.store = ResultStore(slot.storage, lock_manager=manager, serializer=slot.serializer)
        self.store._storage = slot.storage
        # A run that ends before staging (a cache error, a cancellation) lets the key go.
        self._run.add_done_callback(self._unstaged_run_ended)  # the run is alive: it asks
        if slot.is_async:
            return self._alock(slot.path)
        self.store.acquire_lock(slot.path, self._holder)
        self._locked = True
        return None

    async def _alock(self, key: str) -> None:
        await self.store.aacquire_lock(key, self._holder)
        self._locked = True

    def _unstaged_run_ended(self) -> None:
        if self.state is TransactionState.ACTIVE:
            self._release()

    def _cached(self) -> None:
        """The run found its record: nothing to stage, nothing to commit."""
        self._run = None
        self.state = TransactionState.COMMITTED
        self._release()
        parent = self._parent
        if parent is not None:
            parent.add_child(self)

    def _stage_run(self, value: Any, slot: Any) -> Any:
        """The run completed with ``value``: stage it, then end as a transaction exits."""
        self._run = None
        self._stage_value(value, slot)
        parent = self._parent
        if parent is not None and self.commit_mode is not CommitMode.EAGER:
            # The parent takes responsibility: nothing to run now, unless it rolled back.
            if not parent._adopt(self):
                return None
            steps: Steps[Any] = self._rollback_steps()
        else:
            steps = self._staged_steps()
        if self._is_async:
            return _run_async(steps)
        return _run_sync(steps)

    def _stage_value(self, value: Any, slot: Any) -> None:
        commit_hooks, rollback_hooks = self._hooks
        if slot is not None:
            self.key = slot.path
            if self.defers_write:
                self._slot = slot
                if self.isolation_level is IsolationLevel.SERIALIZABLE:
                    # Other processes wait for the key until this transaction ends.
                    handle, slot.lock = slot.lock, None
                    if handle is not None:
                        self._slot_lock = (slot.storage, handle)
        self.stage(value, list(rollback_hooks), list(commit_hooks))

    def _staged_steps(self) -> Steps[None]:
        parent = self._parent
        if self.commit_mode is CommitMode.EAGER:
            yield from self._commit_steps(None)
        if parent is not None:
            if parent._adopt(self):
                yield from self._rollback_steps()
            return
        if self.commit_mode is CommitMode.OFF:
            yield from self._rollback_steps()
        else:
            yield from self._commit_steps(None)

    def _run_failed(self) -> Any:
        """The run ended without a result: it rolls back, and so does its parent."""
        self._run = None
        steps = self._failed_steps()
        if self._is_async:
            return _run_async(steps)
        return _run_sync(steps)

    def _failed_steps(self) -> Steps[None]:
        yield from self._rollback_steps()
        parent = self._parent
        if parent is not None:
            parent.add_child(self)
            if not parent._implicit:
                yield from parent._rollback_steps()

    # -- a flow run's implicit transaction ------------------------------------------------------
    def _flow_ended(self, completed: bool) -> None:
        _run_sync(self._commit_steps(None) if completed else self._rollback_steps())

    async def _aflow_ended(self, completed: bool) -> None:
        await _run_async(self._commit_steps(None) if completed else self._rollback_steps())


class AsyncTransaction(Transaction):
    """The transaction :func:`atransaction` opens: its lock, commit and rollback are awaited."""

    async def begin(self) -> None:  # type: ignore[override]  # the async twin of begin
        if self._serializable():
            await self.store.aacquire_lock(self.key, holder=self._holder)
            self._locked = True
        self._begun()

    async def commit(self) -> bool:  # type: ignore[override]  # the async twin of commit
        return await _run_async(self._commit_steps(None))

    async def rollback(self) -> bool:  # type: ignore[override]  # the async twin of rollback
        return await _run_async(self._rollback_steps())

    async def __aenter__(self) -> AsyncTransaction:
        self._prepare()
        await self.begin()
        self._token = _current.set(self)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._token is None:
            raise RuntimeError("Asymmetric use of context. Context exit called without an enter.")
        if exc_type is None or issubclass(exc_type, Exception):
            await self._await_members()
        await _run_async(self._exit_steps(exc_type is not None))


def _slot_record(slot: Any, value: Any) -> Any:
    """A task run's staged record, encoded as the cache encodes it."""
    from .._cache._record_io import slot_record

    data, expires, fmt, payload = slot_record(slot, value)

    def after() -> None:
        if slot.in_memory:
            slot.shared.remember(slot.path, expires, fmt, value, payload, slot.owner)
        else:
            slot.shared.forget(slot.path)

    return (slot.storage, slot.path, data, after)


def _write_batch(items: list[Any]) -> None:
    """Write the records of one commit: per local storage all at once, elsewhere in turn."""
    if not items:
        return
    from .._cache._storage import LocalStorage
    from ._atomic import commit_local

    by_storage: dict[int, tuple[Any, list[tuple[str, bytes]]]] = {}
    for storage, path, data, _ in items:
        entry = by_storage.setdefault(id(storage), (storage, []))
        entry[1].append((path, data))
    for storage, records in by_storage.values():
        if type(storage) is LocalStorage:
            opened(storage)
            commit_local(storage, records)
        else:
            for path, data in records:
                storage.replace(path, data, None)


# -- carrying out steps -------------------------------------------------------------------------
def _run_sync(steps: Steps[T]) -> T:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            awaitable = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]  # the steps' return value
        value, error = None, None
        try:
            value = run_coroutine_sync(_awaited(awaitable))
        except Exception as exc:
            error = exc


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _run_async(steps: Steps[T]) -> T:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            awaitable = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]  # the steps' return value
        value, error = None, None
        try:
            value = await awaitable
        except Exception as exc:
            error = exc


# -- opening transactions ---------------------------------------------------------------------
def _default_store(key: str | None, store: Any) -> Any:
    if store is not None or not key:
        return store
    from ._store import ResultStore

    # The result storage of the innermost run that sets one (a task's, a flow's), as Prefect's
    # transactions use the run's result store.
    run: Any = current_run.get()
    storage = None
    while run is not None and storage is None:
        if run.is_flow:
            storage = getattr(run.spec, "result_storage", None)
        else:
            storage = getattr(getattr(run.spec.owner, "options", None), "result_storage", None)
        run = run.parent
    return ResultStore(storage)


def _logger_for(logger: Any) -> Any:
    if logger is not None:
        return logger
    try:
        return get_run_logger()
    except MissingContextError:
        return _logger


@contextmanager
def transaction(
    key: str | None = None,
    store: Any = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> Iterator[Transaction]:
    """Open a transaction: the runs completed inside it commit together when it ends (and it
    writes its own record under ``key``), or roll back together if it raises.

    ``store`` (a ``ResultStore``) holds the record; by default the enclosing flow's result
    storage, else the default storage. ``commit_mode`` and ``isolation_level`` default to the
    parent's (``LAZY`` and ``READ_COMMITTED`` at the top). A key that already has a record is
    committed from the start, unless ``overwrite``.
    """
    with Transaction(
        key=key,
        store=_default_store(key, store),
        commit_mode=commit_mode,
        isolation_level=isolation_level,
        overwrite=overwrite,
        write_on_commit=write_on_commit,
        logger=_logger_for(logger),
    ) as txn:
        yield txn


@asynccontextmanager
async def atransaction(
    key: str | None = None,
    store: Any = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> AsyncIterator[AsyncTransaction]:
    """The async twin of :func:`transaction`: its lock, hooks and waits are awaited."""
    async with AsyncTransaction(
        key=key,
        store=_default_store(key, store),
        commit_mode=commit_mode,
        isolation_level=isolation_level,
        overwrite=overwrite,
        write_on_commit=write_on_commit,
        logger=_logger_for(logger),
    ) as txn:
        yield txn


# -- task runs --------------------------------------------------------------------------------
_implicit_lock = threading.Lock()


def attach(run: Any, submitted: bool) -> None:
    """Give a new task run its own transaction when it needs one: inside a transaction, with
    commit or rollback hooks, or with a policy that sets an isolation level."""
    # Every task run comes here, and most need nothing: no transaction is open, the run is not
    # made inside a task run that has one, and its task has no transaction hooks and no
    # isolation level. That is decided first, in a few reads.
    if _current.get() is None and not run.spec.transactional:
        outer = run.parent  # the run whose code makes this one (current_run)
        if outer is None or outer.is_flow or outer.txn is None:
            return
    parent = _innermost(False)
    options = run.spec.owner.options
    commit_hooks = options.on_commit or ()
    rollback_hooks = options.on_rollback or ()
    policy = _policy_of(run.spec.cache)
    if parent is None:
        if (
            not commit_hooks
            and not rollback_hooks
            and (policy is None or policy.isolation_level is None)
        ):
            return
        flow = run.flow
        if flow is not None and (commit_hooks or rollback_hooks):
            parent = flow.txn
            if parent is None:
                with _implicit_lock:
                    parent = flow.txn
                    if parent is None:
                        parent = Transaction()
                        parent._implicit = True
                        parent.commit_mode = CommitMode.LAZY
                        parent.isolation_level = IsolationLevel.READ_COMMITTED
                        parent.state = TransactionState.ACTIVE
                        flow.txn = parent
    run.txn = Transaction._for_run(run, parent, (commit_hooks, rollback_hooks), policy)
    if submitted and parent is not None and not parent._implicit:
        parent._add_member(run)
