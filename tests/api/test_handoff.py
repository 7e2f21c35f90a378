"""The exchange threads answer as the executor they replace did: results and exceptions where
they are awaited, nothing run for a call cancelled before it started, everything handed over
run before they stop; and a deadline cancels only what still runs at its time."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from accord.api.handoff import ExchangeThreads, Running, Timeouts


def test_results_and_exceptions_come_back_to_the_loop_that_awaits_them() -> None:
    threads = ExchangeThreads(4, "test")

    def square(n: int) -> int:
        if n == 7:
            raise ValueError("seven")
        return n * n

    async def run() -> list[int | str]:
        loop = asyncio.get_running_loop()
        futures = [threads.run(loop, square, n) for n in range(200)]
        out: list[int | str] = []
        for future in futures:
            try:
                out.append(await future)
            except ValueError as exc:
                out.append(str(exc))
        return out

    try:
        assert asyncio.run(run()) == [("seven" if n == 7 else n * n) for n in range(200)]
    finally:
        threads.shutdown()


def test_a_call_cancelled_before_a_thread_takes_it_is_not_run() -> None:
    threads = ExchangeThreads(1, "test")
    held, ran = threading.Event(), list[str]()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        first = threads.run(loop, held.wait, 10)
        second = threads.run(loop, ran.append, "second")
        second.cancel()
        held.set()
        assert await first is True
        third = threads.run(loop, ran.append, "third")
        await third
        with pytest.raises(asyncio.CancelledError):
            await second

    try:
        asyncio.run(run())
    finally:
        threads.shutdown()
    assert ran == ["third"]


def test_shutdown_runs_what_was_handed_over_then_refuses_more() -> None:
    threads = ExchangeThreads(2, "test")
    done: list[int] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for n in range(20):
            threads.run(loop, done.append, n)
        threads.shutdown(wait=True)
        with pytest.raises(RuntimeError):
            threads.run(loop, done.append, 99)

    asyncio.run(run())
    assert sorted(done) == list(range(20))


def _watched(loop: asyncio.AbstractEventLoop, timeouts: Timeouts, due: float) -> Running:
    """An exchange due in ``due`` seconds, watched by ``timeouts``."""
    running = Running(loop.time() + due, loop.create_future())
    timeouts.watch(loop, running)
    return running


def _future(running: Running) -> asyncio.Future[Any]:
    assert running.future is not None
    return running.future


def test_an_exchange_still_running_at_its_time_is_cancelled_and_one_answered_is_not() -> None:
    async def run() -> tuple[Running, Running, Running]:
        loop = asyncio.get_running_loop()
        timeouts = Timeouts()
        late, answered, later = (_watched(loop, timeouts, due) for due in (0.05, 0.05, 0.3))
        _future(answered).set_result(None)
        timeouts.done(answered)
        await asyncio.sleep(0.15)
        return late, answered, later

    late, answered, later = asyncio.run(run())
    assert late.expired
    assert _future(late).cancelled()
    assert not answered.expired
    assert not _future(answered).cancelled()
    # Not yet due when the first timer fired: left running.
    assert not later.expired
    assert not _future(later).done()


def test_an_answer_claimed_by_its_thread_is_not_cancelled_and_one_expired_cannot_be_claimed() -> (
    None
):
    """Whichever comes first of an exchange's thread claiming its answer and its time running
    out wins: a claimed answer is awaited past its time; an expired exchange's thread learns
    that its answer will not be received."""

    async def run() -> tuple[Running, Running, bool]:
        loop = asyncio.get_running_loop()
        timeouts = Timeouts()
        claimed, expired = (_watched(loop, timeouts, 0.05) for _ in range(2))
        assert claimed.answer()  # the thread has its answer, not yet handed back
        await asyncio.sleep(0.15)
        return claimed, expired, expired.answer()

    claimed, expired, late_claim = asyncio.run(run())
    assert not claimed.expired
    assert not _future(claimed).cancelled()
    assert expired.expired
    assert _future(expired).cancelled()
    assert late_claim is False
