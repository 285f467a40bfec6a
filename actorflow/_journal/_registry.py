"""The process's journal: chosen by ``ACTORFLOW_JOURNAL`` or :func:`enable`, for every run in the
process (not for a block of code), and process-wide subscriptions to state changes.

``ACTORFLOW_JOURNAL``: unset, ``on`` or ``1``: ``$ACTORFLOW_HOME/journal.db``
(``~/.actorflow/journal.db``); ``off`` or ``0``: no journal; ``:memory:``: one in this process;
anything else: the path of the database. The default journal is made at the first run, not at
import, so importing actorflow opens no file and starts no thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, final

from .._core import StateType, add_sink, event_for, remove_sink

if TYPE_CHECKING:  # imported at first use: sqlite3 is not worth loading with actorflow
    from pathlib import Path

    from .._core import TransitionEvent
    from ._store import Journal

__all__ = [
    "Subscription",
    "current",
    "default_path",
    "disable",
    "enable",
    "flush_current",
    "install_from_environment",
    "open_journal",
    "subscribe",
]

_OFF = frozenset({"off", "0", "false", "no"})
_ON = frozenset({"", "on", "1", "true", "yes"})
_RUN_LOGGERS = ("actorflow.task_runs", "actorflow.flow_runs")

_lock = threading.RLock()
_current: Journal | None = None
#: What the lazy default journal will be made from, until the first run makes it.
_pending: tuple[str, float] | None = None


def default_path() -> Path:
    """``$ACTORFLOW_HOME/journal.db`` (``~/.actorflow/journal.db`` by default), read at each use."""
    from pathlib import Path  # here: pathlib (and the urllib.parse it loads) is slow to import

    return Path(_default_file())


def _default_file() -> str:
    home = os.environ.get("ACTORFLOW_HOME") or "~/.actorflow"
    return os.path.join(os.path.expanduser(home), "journal.db")


def _path_from_setting(value: str) -> str | None:
    text = value.strip()
    if text.lower() in _OFF:
        return None
    if text.lower() in _ON:
        return _default_file()
    return text


class _LogHandler(logging.Handler):
    """Hands the log records of runs (they carry ``run_id``) to the journal."""

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "run_id", None) is not None:
            self.journal.log(record)


_handler: _LogHandler | None = None


def _attach(journal: Journal) -> None:
    global _current, _handler
    _current = journal
    add_sink(journal.sink)
    _handler = _LogHandler(journal)
    for name in _RUN_LOGGERS:
        logging.getLogger(name).addHandler(_handler)


def _detach() -> Journal | None:
    global _current, _handler, _pending
    journal, _current = _current, None
    _pending = None
    remove_sink(_lazy_sink)
    if journal is not None:
        remove_sink(journal.sink)
    if _handler is not None:
        for name in _RUN_LOGGERS:
            logging.getLogger(name).removeHandler(_handler)
        _handler = None
    return journal


def enable(
    path: str | os.PathLike[str] | Journal | None = None,
    *,
    interval: float = 0.2,
    progress: bool | None = None,
) -> Journal:
    """Journal every run of this process from now on, in ``path`` (``None``: the default file,
    ``":memory:"``: in memory, or a :class:`Journal`). Replaces (and closes) the journal in use;
    returns the new one. ``interval``: seconds between the writer thread's batches;
    ``progress``: whether long flow runs draw a progress line on a terminal (``None``: unless
    ``ACTORFLOW_PROGRESS=off``)."""
    from ._store import Journal

    with _lock:
        old = _detach()
        if old is not None:
            old.close()
        if isinstance(path, Journal):
            journal = path
        else:
            journal = Journal(
                _default_file() if path is None else path, interval=interval, progress=progress
            )
        _attach(journal)
        return journal


def disable() -> None:
    """Stop journaling; the journal in use is flushed and closed."""
    with _lock:
        journal = _detach()
    if journal is not None:
        journal.close()


def current() -> Journal | None:
    """The journal runs of this process are recorded in (made now if the setting asks for one
    and no run has made it yet), or ``None``."""
    with _lock:
        if _pending is not None:
            _materialize()
        return _current


def flush_current() -> None:
    """Write what the journal in use has queued, if there is one. A task worker calls this
    before it acknowledges runs at the broker: a run acknowledged is a run journaled, even if
    the worker is killed the next moment (its journal writes only every ``interval``)."""
    journal = _current
    if journal is not None:
        journal.flush()


def open_journal(path: str | os.PathLike[str] | None = None) -> Journal:
    """A journal to read: the one at ``path`` (default: this process's setting, else the
    default file), written by this process or another."""
    if path is None:
        mine = current()
        if mine is not None:
            return mine
        path = default_path()
    from ._store import Journal

    return Journal.open(path)


def _materialize() -> None:
    global _pending
    pending, _pending = _pending, None
    remove_sink(_lazy_sink)
    if pending is None or _current is not None:
        return
    path, interval = pending
    from ._store import Journal

    try:
        _attach(Journal(path, interval=interval))
    except Exception as exc:
        logging.getLogger("actorflow").warning(
            "runs are not journaled: the journal at %r could not be opened (%s: %s); set "
            "ACTORFLOW_JOURNAL=off to silence this, or to another path",
            path,
            type(exc).__name__,
            exc,
        )


def _lazy_sink(run: Any, old: Any, kind: Any, ts: int, message: str | None, data: Any) -> None:
    with _lock:
        if _pending is not None:
            _materialize()
        journal = _current
    if journal is not None:
        journal.sink(run, old, kind, ts, message, data)


def install_from_environment() -> None:
    """Read ``ACTORFLOW_JOURNAL`` (at import): the journal it names is made by the first run."""
    global _pending
    path = _path_from_setting(os.environ.get("ACTORFLOW_JOURNAL", "on"))
    with _lock:
        if path is None or _current is not None:
            return
        _pending = (path, 0.2)
        add_sink(_lazy_sink)


def _at_exit() -> None:
    journal = _current
    if journal is not None:
        try:
            journal.close()
        except Exception:
            logging.getLogger("actorflow").exception("the run journal could not be closed")


def _after_fork() -> None:
    global _lock
    _lock = threading.RLock()
    if _current is not None:
        _current.after_fork()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork)


# -- subscriptions ------------------------------------------------------------------------------
@final
class Subscription:
    """A process-wide subscription to state changes; :meth:`cancel` (or leaving its ``with``
    block) ends it."""

    def __init__(self, sink: Callable[..., None]) -> None:
        self._sink = sink

    def cancel(self) -> None:
        remove_sink(self._sink)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


_TYPES = frozenset(t.value for t in StateType)


def subscribe(
    callback: Callable[[TransitionEvent], object], *, states: Iterable[str] | None = None
) -> Subscription:
    """Call ``callback(event)`` for every transition of every run in this process, or only for
    those into ``states`` (state types such as ``"FAILED"``, or names such as ``"Cached"``):
    ``subscribe(alert, states=["FAILED", "CRASHED"])`` hears of every run that fails.

    The callback runs on the thread making the transition, before the run's waiters are
    released: keep it quick. One that raises is logged; the run goes on.
    """
    if not callable(callback):
        raise TypeError(f"subscribe needs a callable, got {callback!r}")
    wanted: frozenset[str] | None = None
    if states is not None:
        if isinstance(states, str):
            states = [states]
        chosen = list(states)
        bad = [s for s in chosen if not isinstance(s, str) or not s]
        if bad:
            raise TypeError(f"states must be state types or names (strings), got {bad!r}")
        wanted = frozenset(s.upper() if s.upper() in _TYPES else s for s in chosen)

    def sink(run: Any, old: Any, kind: Any, ts: int, message: str | None, data: Any) -> None:
        if wanted is None or kind.type.value in wanted or kind.name in wanted:
            callback(event_for(run, old, kind.at(ts, message, data, run._int_id)))

    add_sink(sink)
    return Subscription(sink)
