"""Signals to a script running a flow: its runs end at once, recorded, and then the signal takes
its ordinary effect.

While a top-level flow runs on the main thread:

- SIGTERM raises :class:`TerminationSignal` in a sync flow's thread (as Ctrl-C raises
  ``KeyboardInterrupt``): the flow and the task runs with sync bodies still running end Crashed,
  queued runs Cancelled. An async flow's loop is told instead: the flow's scope is cancelled and
  its children end the same way (the flow ends Cancelled). Afterwards the previous handler is put
  back and the signal sent again, so the process ends as it would have (by default, terminated
  by SIGTERM), as in Prefect.
- SIGINT goes to the handler there was. On asyncio, which cancels the main task (a plain
  cancellation, after which an async flow would wait for its sync bodies), the sync bodies are
  abandoned first. trio raises ``KeyboardInterrupt`` in the flow's task, and a sync flow's thread
  gets it too: an interrupted flow abandons its sync bodies itself.

One pair of handlers serves every top-level flow running at the time (a service may run many
async flows at once); the previous handlers are back once the last one has ended. A SIGTERM that
was ignored (``SIG_IGN``) stays ignored. Off the main thread, nothing is installed.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's C module, untyped: see _SIGNALS
import contextlib
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, final

from ._core import FlowRun, TerminationSignal, current_loop, runtime

__all__ = ["async_flow_signals", "sync_flow_signals", "write_out"]

# Every top-level flow call installs and restores the handlers: through the C module under
# ``signal``, whose functions take and give plain ints, without the enum conversions of
# ``signal.signal`` and ``signal.getsignal`` (they were half of a trivial flow call's cost).
_SIGNALS = (int(signal.SIGTERM), int(signal.SIGINT))

Handler = Callable[[int, Any], Any] | int | signal.Handlers | None
#: What a SIGTERM or SIGINT does to one running async flow (called in the signal handler).
Stop = Callable[[int], None]


@final
class _Handlers:
    """The flows the installed handlers serve, and the handlers there were before."""

    def __init__(self) -> None:
        self.sync_flows = 0
        self.async_flows: dict[int, Stop] = {}
        self.previous: dict[int, Handler] = {}

    def enter(self, stop: Stop | None) -> int:
        """A top-level flow starts (``stop``: an async one's); the handlers are installed
        with the first. A key for :meth:`leave`."""
        if not self.sync_flows and not self.async_flows:
            for signum in _SIGNALS:
                previous = _signal.getsignal(signum)
                if previous != _signal.SIG_IGN:
                    self.previous[signum] = previous
                    _signal.signal(signum, self._handle)
        if stop is None:
            self.sync_flows += 1
            return 0
        key = id(stop)
        self.async_flows[key] = stop
        return key

    def leave(self, key: int) -> None:
        if key:
            del self.async_flows[key]
        else:
            self.sync_flows -= 1
        if not self.sync_flows and not self.async_flows:
            self.restore()

    def restore(self) -> None:
        previous, self.previous = self.previous, {}
        for signum, handler in previous.items():
            _signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        for stop in list(self.async_flows.values()):
            stop(signum)
        if signum == signal.SIGTERM:
            if self.sync_flows:
                raise TerminationSignal(signum)
            if not self.async_flows:  # pragma: no cover - installed only while flows run
                self.terminate_again(signum)
            return
        previous = self.previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # pragma: no cover - Python installs its own
            raise KeyboardInterrupt

    def terminate_again(self, signum: int) -> None:
        """Put the previous handlers back and send the signal again, so that it takes the
        effect it would have had without the flows (by default: the process ends)."""
        self.sync_flows, self.async_flows = 0, {}
        self.restore()
        write_out(close_journal=True)  # killed by the signal, the process runs no atexit
        os.kill(os.getpid(), signum)


def write_out(*, close_journal: bool) -> None:
    """Write what the process holds before it stops running flows: runs handed to ``.delay()``
    reach the broker (the queue's sender threads stop), and the run journal writes its queue
    (and, with ``close_journal``, stops its writer: the process is about to end). Also what a
    stopping service does (``actorflow.serving``)."""
    queue = sys.modules.get("actorflow._queue._client")
    if queue is not None:  # loaded only if the queue was used
        queue.close_clients()
    registry = sys.modules.get("actorflow._journal._registry")
    journal = None if registry is None else registry.current()
    if journal is not None:
        if close_journal:
            journal.close()
        else:
            journal.flush()


def _handlers() -> _Handlers:
    # A slot of the runtime: a forked child starts with none (its parent's flows are not there).
    return runtime.slot("signals", _Handlers)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sync_flow_signals() -> Iterator[None]:
    """Around a top-level sync flow: SIGTERM raises :class:`TerminationSignal` here."""
    if not _on_main_thread():
        yield
        return
    handlers = _handlers()
    key = handlers.enter(None)
    try:
        yield
    except TerminationSignal as exc:
        handlers.terminate_again(exc.signal)
        raise  # the previous handler let the process live on
    finally:
        if handlers.sync_flows:
            handlers.leave(key)


@contextlib.asynccontextmanager
async def async_flow_signals(run: FlowRun) -> AsyncIterator[None]:
    """Around a top-level async flow: SIGTERM ends ``run`` (its children at once); SIGINT
    abandons its sync bodies, then goes to the handler there was."""
    if not _on_main_thread():
        yield
        return
    import anyio

    loop = current_loop()
    scope = anyio.CancelScope()
    terminated: list[int] = []

    def on_loop(signum: int) -> None:
        if signum == signal.SIGTERM:  # first: the body must not see its children end, go on
            scope.cancel()
        run.interrupt_children(f"its flow run was stopped by {signal.Signals(signum).name}")

    def stop(signum: int) -> None:  # in the signal handler: the rest happens on the loop
        if signum == signal.SIGTERM:
            terminated.append(signum)
        elif loop.backend == "trio":
            # trio raises KeyboardInterrupt in the flow's task, which abandons the sync bodies
            # itself; abandoning them first would let the body go on with their ends.
            return
        loop.call_soon_threadsafe(on_loop, signum)

    handlers = _handlers()
    key = handlers.enter(stop)
    try:
        with scope:
            yield
    finally:
        if key in handlers.async_flows:
            handlers.leave(key)
    if terminated:
        handlers.terminate_again(terminated[0])
        raise TerminationSignal(terminated[0])  # the previous handler let the process live on
