"""One rate limit per partner across workers and hosts: the moving window kept in Redis.

These tests need the Redis server at ``ACCORD_TEST_REDIS_URL`` (default 127.0.0.1:6379, which
``make test`` starts): without it they fail, they are not skipped. Each test counts under its own
random key prefix and deletes its keys.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi import FastAPI
from limits import parse

from accord.api import ApiSettings, create_app
from accord.api.errors import RateLimitStoreUnreachable
from accord.api.ratelimit import SharedMovingWindow
from api.world import World, app_token, bearer, serving

pytestmark = pytest.mark.integration

REDIS = os.environ.get("ACCORD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LINK = {
    "collection": "linked_accounts",
    "purpose": "essential.service.authentication",
    "categories": ["user.account.linked"],
    "subjects": {"kind": "people", "people": ["r0000001"]},
}
EXCHANGE = "/v1/agreements/chirp-reelix/clauses/account-link/exchanges"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"accord-test-{secrets.token_hex(8)}"
    client = redis.Redis.from_url(REDIS)
    try:
        assert client.ping(), f"no Redis at {REDIS}: run make services"
        yield name
        keys = list(client.scan_iter(match=f"{name}*"))
        if keys:
            client.delete(*keys)
        assert not list(client.scan_iter(match=f"{name}*"))
    finally:
        client.close()


@pytest.fixture
def workers(prefix: str) -> Iterator[tuple[SharedMovingWindow, SharedMovingWindow]]:
    """Two limiters on one Redis, as two workers of one deployment hold them: 3 in 2 seconds."""
    one = SharedMovingWindow(parse("3/2 seconds"), REDIS, prefix)
    two = SharedMovingWindow(parse("3/2 seconds"), REDIS, prefix)
    yield one, two
    one.close()
    two.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_two_workers_share_one_window(
    workers: tuple[SharedMovingWindow, SharedMovingWindow],
) -> None:
    one, two = workers
    before_first = time.time()
    assert one.hit("chirp") is None
    after_first = time.time()
    assert two.hit("chirp") is None
    assert one.hit("chirp") is None
    asked = time.time()
    wait = two.hit("chirp")  # the fourth across both: refused
    answered = time.time()
    assert wait is not None
    # The window frees when the first hit leaves it, two seconds after it was counted.
    assert before_first + 2 - 1e-3 <= answered + wait
    assert asked + wait <= after_first + 2 + 1e-3
    assert one.hit("chirp") is not None  # the other worker refuses too
    assert two.hit("reelix") is None  # another partner has its own window
    time.sleep(max(0.0, after_first + 2 - time.time()) + 0.05)
    assert one.hit("chirp") is None  # the window moved on
    assert two.hit("chirp") is None  # the second hit left with the first


def test_concurrent_hits_from_two_workers_never_pass_the_limit(prefix: str) -> None:
    limiters = [SharedMovingWindow(parse("50/minute"), REDIS, prefix) for _ in range(2)]
    allowed: list[bool] = []

    def hammer(limiter: SharedMovingWindow) -> None:
        for _ in range(25):
            allowed.append(limiter.hit("chirp") is None)

    threads = [threading.Thread(target=hammer, args=(limiters[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for limiter in limiters:
        limiter.close()
    assert len(allowed) == 200
    assert allowed.count(True) == 50


def test_two_deployments_on_one_redis_count_apart(prefix: str) -> None:
    ours = SharedMovingWindow(parse("1/minute"), REDIS, prefix)
    theirs = SharedMovingWindow(parse("1/minute"), REDIS, f"{prefix}-other")
    try:
        assert ours.hit("chirp") is None
        assert theirs.hit("chirp") is None  # the same partner name, another deployment
        assert ours.hit("chirp") is not None
    finally:
        ours.close()
        theirs.close()


def test_a_store_that_cannot_be_reached_refuses_until_it_answers(prefix: str) -> None:
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed: run make services"
    port = free_port()
    limiter = SharedMovingWindow(parse("1/minute"), f"redis://:hunter2@127.0.0.1:{port}/0", prefix)
    try:
        started = time.monotonic()
        with pytest.raises(RateLimitStoreUnreachable) as refused:
            limiter.hit("chirp")
        assert time.monotonic() - started < 1  # refused at once, not after retries
        assert str(refused.value) == (
            f"the rate-limit store at redis://127.0.0.1:{port}/0 cannot be reached; "
            "nothing was released"
        )
        with pytest.raises(RateLimitStoreUnreachable):
            limiter.hit("chirp")  # still refused: never served unlimited
        process = subprocess.Popen(  # noqa: S603 - a fixed command line
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                "hunter2",
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            probe = redis.Redis.from_url(f"redis://:hunter2@127.0.0.1:{port}/0")
            deadline = time.monotonic() + 10
            while True:
                try:
                    probe.ping()
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "the second Redis did not start"
                    time.sleep(0.05)
            probe.close()
            assert limiter.hit("chirp") is None  # the next hit connected again
            assert limiter.hit("chirp") is not None
        finally:
            process.terminate()
            process.wait(timeout=10)
    finally:
        limiter.close()


@pytest.fixture
def shared_apps(world: World, prefix: str) -> Iterator[tuple[str, str]]:
    """Two API apps over the world's store, as two workers with the store set: 3 a minute."""
    settings = ApiSettings(rate_limit="3/minute", rate_limit_store=REDIS, rate_limit_prefix=prefix)
    apps = [create_app(world.accord, world.sources, settings) for _ in range(2)]
    try:
        with serving(apps[0]) as one, serving(apps[1]) as two:
            yield one, two
    finally:
        for app in apps:
            close_limiter(app)


def close_limiter(app: FastAPI) -> None:
    # The tests serve without the lifespan that would close it.
    app.state.services.access.close()


def test_two_api_workers_refuse_a_partner_past_the_limit_across_both(
    world: World, shared_apps: tuple[str, str]
) -> None:
    one, two = (httpx.Client(base_url=url) for url in shared_apps)
    with one, two:
        chirp = bearer(app_token(one, world.chirp, world.chirp_secret))
        reelix = bearer(app_token(two, world.reelix, world.reelix_secret))
        assert one.get("/v1/app", headers=chirp).status_code == 200
        assert two.get("/v1/app", headers=chirp).status_code == 200
        assert one.get("/v1/app", headers=chirp).status_code == 200
        over = two.get("/v1/app", headers=chirp)  # the fourth in a minute, across both
        assert over.status_code == 429
        assert over.headers["content-type"] == "application/problem+json"
        assert 58 <= int(over.headers["retry-after"]) <= 60
        assert one.get("/v1/app", headers=chirp).status_code == 429
        assert one.get("/v1/app", headers=reelix).status_code == 200  # another partner


def test_an_unreachable_store_refuses_with_503_and_releases_nothing(
    world: World, client: httpx.Client
) -> None:
    port = free_port()
    settings = ApiSettings(rate_limit_store=f"redis://:hunter2@127.0.0.1:{port}/0")
    app = create_app(world.accord, world.sources, settings)
    size = world.accord.ledger.head().size
    try:
        with serving(app) as url, httpx.Client(base_url=url) as http:
            chirp = bearer(app_token(http, world.chirp, world.chirp_secret))
            r = http.post(EXCHANGE, json=LINK, headers=chirp)
            assert http.get("/v1/app", headers=chirp).status_code == 503
    finally:
        close_limiter(app)
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "1"
    assert r.json()["detail"] == (
        f"the rate-limit store at redis://127.0.0.1:{port}/0 cannot be reached; "
        "nothing was released"
    )
    assert "hunter2" not in r.text
    assert "Traceback" not in r.text
    assert "rows" not in r.json()
    assert world.accord.ledger.head().size == size  # nothing logged, nothing released
    # The same request, through a worker counting in memory, is released and logged.
    token = bearer(app_token(client, world.chirp, world.chirp_secret))
    released = client.post(EXCHANGE, json=LINK, headers=token)
    assert released.status_code == 200, released.text
    assert world.accord.ledger.head().size > size


def test_workers_over_one_store_share_a_prefix_derived_from_it(world: World) -> None:
    # No prefix set: every worker over this store derives the same one from the store's URL.
    settings = ApiSettings(rate_limit="2/minute", rate_limit_store=REDIS)
    apps = [create_app(world.accord, world.sources, settings) for _ in range(2)]
    client = redis.Redis.from_url(REDIS)
    before = set(client.scan_iter(match="accord:*"))
    try:
        with (
            serving(apps[0]) as one,
            serving(apps[1]) as two,
            httpx.Client(base_url=one) as a,
            httpx.Client(base_url=two) as b,
        ):
            unreviewed = bearer(app_token(a, world.unreviewed, world.unreviewed_secret))
            assert a.get("/v1/app", headers=unreviewed).status_code == 200
            assert b.get("/v1/app", headers=unreviewed).status_code == 200
            assert a.get("/v1/app", headers=unreviewed).status_code == 429
        made = set(client.scan_iter(match="accord:*")) - before
        (key,) = made
        assert key.decode().endswith(f"/{world.unreviewed.party}/2/1/minute")
    finally:
        for app in apps:
            close_limiter(app)
        made = set(client.scan_iter(match="accord:*")) - before
        if made:
            client.delete(*made)
        client.close()


def test_a_full_shared_window_is_known_without_asking_once_a_hit_found_it_full(
    workers: tuple[SharedMovingWindow, SharedMovingWindow],
) -> None:
    # What the limit on refused tokens asks before authenticating: no round trip to Redis.
    one, two = workers
    assert [one.hit("203.0.113.7") for _ in range(3)] == [None, None, None]
    assert one.refusing("203.0.113.7") is None  # full, but no hit of this worker found it so
    wait = one.hit("203.0.113.7")
    assert wait is not None
    refusing = one.refusing("203.0.113.7")
    assert refusing is not None
    assert 0 < refusing <= 2
    assert two.refusing("203.0.113.7") is None  # the other worker learns at its own next hit
    assert two.hit("203.0.113.7") is not None
    assert two.refusing("203.0.113.7") is not None
    assert one.refusing("198.51.100.20") is None  # another address
