"""The shared rate limit's Redis stops, or stalls, under a serving API.

Decided behaviour: a partner's request is refused (503, ``urn:accord:problem:rate-limit-store``,
``Retry-After: 1``) while the store does not answer, never served unlimited and never counted
against a limit of one worker's own: a privacy gateway fails closed, and a per-worker fallback
would multiply each partner's limit by the number of workers and hosts without anyone noticing.
Nothing is released or logged for a refused request; when the store answers again, requests are
served, with no restart.

The Redis here is a private ``redis-server`` on a free port, started by the test, so that it can
be stopped (SIGTERM), frozen (SIGSTOP: connections stay open and nothing answers) and started
again without touching the one other tests share.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from accord.api import ApiSettings, create_app
from api.world import World, app_token, bearer, build_world, serving
from faults.helpers import LINK, assert_verifies, link_read
from serving import free_port

pytestmark = pytest.mark.integration


@contextmanager
def _redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A scratch redis-server on ``port`` (nothing written to disk), answering when yielded."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: run make services"
    process = subprocess.Popen(  # noqa: S603 - a fixed command line
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        probe = redis.Redis(port=port, socket_timeout=1)
        for _ in range(200):
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        probe.close()
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with build_world(tmp_path_factory.mktemp("redis-gone")) as built:
        yield built


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "1"
    assert r.json()["type"] == "urn:accord:problem:rate-limit-store"
    assert "rows" not in r.json()


def test_requests_are_refused_while_redis_is_stopped_and_served_once_it_is_back(
    world: World, tmp_path: Path
) -> None:
    port = free_port()
    settings = ApiSettings(rate_limit_store=f"redis://127.0.0.1:{port}/0", rate_limit="1000/minute")
    app = create_app(world.accord, world.sources, settings)
    ledger = world.accord.ledger
    try:
        with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
            token = bearer(app_token(http, world.chirp, world.chirp_secret))
            with _redis(port):
                assert http.post(LINK, json=link_read("r0000001"), headers=token).status_code == 200
            # Stopped: the pooled connection is closed, and a new one is refused.
            size = ledger.head().size
            for _ in range(3):
                _refused(http.post(LINK, json=link_read("r0000001"), headers=token))
            assert ledger.head().size == size  # nothing decided, nothing released
            with _redis(port):
                again = http.post(LINK, json=link_read("r0000001"), headers=token)
                assert again.status_code == 200, again.text
                assert again.json()["rows"]
    finally:
        app.state.services.access.close()
    assert_verifies(ledger)


def test_requests_are_refused_while_redis_stalls_and_served_once_it_answers(world: World) -> None:
    port = free_port()
    settings = ApiSettings(rate_limit_store=f"redis://127.0.0.1:{port}/0", rate_limit="1000/minute")
    app = create_app(world.accord, world.sources, settings)
    ledger = world.accord.ledger
    try:
        with (
            _redis(port) as server,
            serving(app) as base,
            httpx.Client(base_url=base, timeout=30) as http,
        ):
            token = bearer(app_token(http, world.chirp, world.chirp_secret))
            assert http.post(LINK, json=link_read("r0000001"), headers=token).status_code == 200
            size = ledger.head().size
            os.kill(server.pid, signal.SIGSTOP)  # connections open, nothing answers
            try:
                # Refused after the store's timeout, not held for as long as Redis stalls.
                _refused(http.post(LINK, json=link_read("r0000001"), headers=token))
                _refused(http.get("/v1/app", headers=token))
            finally:
                os.kill(server.pid, signal.SIGCONT)
            assert ledger.head().size == size
            again = http.post(LINK, json=link_read("r0000001"), headers=token)
            assert again.status_code == 200, again.text
    finally:
        app.state.services.access.close()
    assert_verifies(ledger)
