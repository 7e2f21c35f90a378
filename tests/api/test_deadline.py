"""Every request but the exchanges answered within its time: :class:`Deadline`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import PlainTextResponse, StreamingResponse

from accord import request_deadline
from accord.api import deadline, problems
from accord.errors import RequestTimedOut
from api.world import serving

pytestmark = pytest.mark.integration

SECONDS = 0.5


@pytest.fixture(scope="module")
def held() -> Iterator[tuple[str, threading.Event, list[str]]]:
    """A server whose routes wait for an event (a store that stalls until it is set)."""
    release = threading.Event()
    seen: list[str] = []
    app = FastAPI()
    problems.install(app)

    @app.get("/held")
    def held_route() -> PlainTextResponse:
        release.wait(30)
        try:
            request_deadline.check()
        except RequestTimedOut as exc:
            seen.append(str(exc))
            raise
        seen.append("stored")
        return PlainTextResponse("done")

    @app.get("/quick")
    def quick() -> PlainTextResponse:
        return PlainTextResponse("quick")

    @app.get("/passed-by/held")
    def passed_by() -> PlainTextResponse:
        release.wait(30)
        return PlainTextResponse("done")

    @app.get("/streaming")
    def streaming() -> StreamingResponse:
        def parts() -> Iterator[bytes]:
            yield b"started "
            release.wait(30)
            yield b"and ended"

        return StreamingResponse(parts())

    app.add_middleware(
        deadline.Deadline, seconds=SECONDS, passed_by=lambda p: p.startswith("/passed-by/")
    )
    with serving(app) as url:
        yield url, release, seen


def test_a_held_request_is_answered_503_and_stores_nothing_after(
    held: tuple[str, threading.Event, list[str]],
) -> None:
    url, release, seen = held
    release.clear()
    with httpx.Client(base_url=url, timeout=20) as http:
        r = http.get("/held")
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"] == (
            "the request did not finish within 0.5 s (a store did not answer) and was "
            "abandoned; nothing was released or issued"
        )
        release.set()  # the store answers again: the abandoned work finds itself too late
        for _ in range(200):
            if seen:
                break
            time.sleep(0.05)
        assert seen == [r.json()["detail"]]


def test_a_request_passed_by_and_a_response_under_way_are_not_cut(
    held: tuple[str, threading.Event, list[str]],
) -> None:
    url, release, _ = held
    release.clear()
    with httpx.Client(base_url=url, timeout=20) as http:
        threading.Timer(2 * SECONDS, release.set).start()
        assert http.get("/passed-by/held").text == "done"
        release.clear()
        threading.Timer(2 * SECONDS, release.set).start()
        r = http.get("/streaming")
        assert r.status_code == 200
        assert r.text == "started and ended"


def test_outside_a_request_nothing_is_past_its_deadline() -> None:
    request_deadline.check()  # no request: raises nothing


def test_requests_answered_meanwhile_do_not_keep_a_held_one_from_its_deadline(
    held: tuple[str, threading.Event, list[str]],
) -> None:
    # Requests fall due in the order they came; the quick ones after a held one end first.
    url, release, _ = held
    release.clear()
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=url, timeout=20) as http:
        waiting = threading.Thread(target=lambda: answers.append(http.get("/held")))
        waiting.start()
        with httpx.Client(base_url=url, timeout=20) as other:
            assert [other.get("/quick").text for _ in range(20)] == ["quick"] * 20
        waiting.join()
        release.set()
    (r,) = answers
    assert r.status_code == 503
