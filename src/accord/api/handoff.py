"""The threads exchanges run in, handed over from the event loop and back, and their deadlines.

``loop.run_in_executor`` hands a call to a :class:`~concurrent.futures.ThreadPoolExecutor` as a
concurrent future (a condition and its lock, a work item) chained to an asyncio future (a
callback each way, each taking the future's lock), and hands every result back with a write to
the loop's self-pipe of its own. :class:`ExchangeThreads` hands the call over as an asyncio
future and a queue entry, and the results back in batches: the results that finish while the
loop has not yet taken the last ones go back with them, on one wake-up. It behaves as the
executor did for the exchanges: a call cancelled before a thread takes it is not run, a
result for a cancelled future is dropped, an exception is raised where the future is awaited,
and :meth:`ExchangeThreads.shutdown` runs what was handed over before the threads stop.

:class:`Timeouts` cancels each exchange still running at its time, as ``asyncio.wait_for`` did.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_Answer = tuple["asyncio.Future[Any]", bool, Any]


class ExchangeThreads:
    """Up to ``count`` threads (named ``name``), started as calls come and kept; each runs
    ``initializer`` first, if given."""

    def __init__(
        self, count: int, name: str, initializer: Callable[[], None] | None = None
    ) -> None:
        self._count = count
        self._name = name
        self._initializer = initializer
        self._work: SimpleQueue[_Work | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._answers: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
        self._shut = False

    def run(
        self, loop: asyncio.AbstractEventLoop, call: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """``call(*args)`` in one of the threads: its result (or exception) in the future, on
        ``loop``; cancel the future before a thread takes the call and it is not run."""
        if self._shut:
            raise RuntimeError("cannot run new exchanges after shutdown")
        future = loop.create_future()
        self._work.put((loop, future, call, args))
        if not self._idle.acquire(blocking=False):
            self._start_one()
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Run what was handed over, then stop the threads (waiting for them if ``wait``)."""
        with self._lock:
            self._shut = True
            threads = list(self._threads)
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()

    def _start_one(self) -> None:
        with self._lock:
            if self._shut or len(self._threads) >= self._count:
                return
            thread = threading.Thread(target=self._serve, name=f"{self._name}_{len(self._threads)}")
            self._threads.append(thread)
            _LIVE.add(self)
        thread.start()

    def _serve(self) -> None:
        if self._initializer is not None:
            self._initializer()
        work = self._work
        while True:
            item = work.get()
            if item is None:
                return
            loop, future, call, args = item
            del item
            if not future.cancelled():  # cancelled before it started: not run
                try:
                    answer: _Answer = (future, True, call(*args))
                except BaseException as exc:  # noqa: BLE001 - raised where it is awaited
                    answer = (future, False, exc)
                self._hand_back(loop, answer)
                del answer
            del loop, future, call, args
            self._idle.release()

    def _hand_back(self, loop: asyncio.AbstractEventLoop, answer: _Answer) -> None:
        """``answer`` to its loop, with the others waiting for it: one wake-up for them all."""
        with self._lock:
            waiting = self._answers.get(loop)
            if waiting is not None:
                waiting.append(answer)
                return
            self._answers[loop] = [answer]
        try:
            loop.call_soon_threadsafe(self._deliver, loop)
        except RuntimeError:  # the loop is closed: no one awaits the answers
            with self._lock:
                self._answers.pop(loop, None)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            answers = self._answers.pop(loop, [])
        for future, ok, value in answers:
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


_LIVE: weakref.WeakSet[ExchangeThreads] = weakref.WeakSet()


def _at_exit() -> None:
    # As an executor's threads: what was handed over runs, then the threads stop, before the
    # interpreter waits for them (its threads' exit hooks run before that wait; atexit's after).
    for threads in list(_LIVE):
        threads.shutdown(wait=False)


getattr(threading, "_register_atexit")(_at_exit)  # noqa: B009 - private, as concurrent.futures


@dataclass(slots=True, eq=False)
class Running:
    """An exchange under way: the loop time it is due by, and its future (set once handed to
    its thread)."""

    due: float
    future: asyncio.Future[Any] | None = None
    expired: bool = False
    """Cancelled at its due time (as ``asyncio.wait_for`` would)."""
    over: bool = False
    """Answered, or expired: nothing more to watch."""
    answering: bool = False
    """Its thread has an answer it will hand back: it is not cancelled at its due time."""

    def answer(self) -> bool:
        """Claim, from the exchange's thread, that its answer will reach the caller: ``False``
        if the exchange already expired (its caller is answered 503 instead). Whichever of this
        and the expiry comes first wins, so a thread knows whether what it hands back is
        received."""
        with _CLAIMS:
            if self.expired:
                return False
            self.answering = True
            return True


_CLAIMS = threading.Lock()
"""Taken for an exchange's answer or its expiry (:meth:`Running.answer`, :class:`Timeouts`)."""


class Timeouts:
    """Cancels each exchange still running at its due time, as ``asyncio.wait_for`` would.

    Every exchange has the same time, so they fall due in the order they started: one queue,
    and one timer for its oldest, watch them all (``wait_for`` arms a timer and a future of its
    own for each). Used on the event loop's thread only.
    """

    def __init__(self) -> None:
        self._queue: deque[Running] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, loop: asyncio.AbstractEventLoop, running: Running) -> None:
        """Watch ``running`` until :meth:`done`."""
        if loop is not self._loop:  # served again, by another loop: its timer went with it
            self._loop, self._queue, self._timer = loop, deque(), None
        self._queue.append(running)
        if self._timer is None:
            self._timer = loop.call_at(running.due, self._due, loop)

    def done(self, running: Running) -> None:
        """``running`` ended (answered or not)."""
        running.over = True
        queue = self._queue
        while queue and queue[0].over:
            queue.popleft()

    def _due(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel every exchange past its time, and wait for the next one's."""
        self._timer = None
        now = loop.time()
        queue = self._queue
        while queue and (queue[0].over or queue[0].due <= now):
            running = queue.popleft()
            if not running.over:
                running.over = True
                future = running.future
                if future is None or future.done():
                    continue
                with _CLAIMS:
                    if running.answering:
                        continue  # its thread has the answer: it is on its way
                    running.expired = True
                future.cancel()
        if queue:
            self._timer = loop.call_at(queue[0].due, self._due, loop)
