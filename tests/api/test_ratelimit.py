"""The per-partner moving window: at most N hits in any window of W seconds, per key; the
setting that moves it to Redis. (The Redis limiter itself: test_ratelimit_redis.py.)"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import typer
from limits import parse
from pydantic import ValidationError
from typer.testing import CliRunner

from accord.api import ApiSettings
from accord.api.cli import serve
from accord.api.ratelimit import MovingWindow, deployment_prefix, shown

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("hits", "at", "expected"),
    [
        ([], 0.0, None),  # nothing counted yet
        ([0.0, 1.0], 2.0, None),  # under the limit of three
        ([0.0, 1.0, 2.0], 3.0, 57.0),  # the fourth within a minute waits for the first to leave
        ([0.0, 1.0, 2.0], 60.0, 0.0),  # the first is still in the window at exactly 60 s
        ([0.0, 1.0, 2.0], 60.5, None),  # and has left it just after
        ([0.0, 30.0, 59.0, 60.5], 61.0, 29.0),  # the window moved: the oldest hit in it decides
    ],
)
def test_a_hit_is_allowed_while_fewer_than_the_limit_are_in_the_window(
    hits: list[float], at: float, expected: float | None
) -> None:
    window = MovingWindow(parse("3/minute"))
    for moment in hits:
        assert window.hit("chirp", at=moment) is None
    assert window.hit("chirp", at=at) == expected


def test_a_refused_hit_is_not_counted_and_keys_are_apart() -> None:
    window = MovingWindow(parse("1/second"))
    assert window.hit("chirp", at=0.0) is None
    assert window.hit("chirp", at=0.5) == 0.5
    assert window.hit("reelix", at=0.5) is None  # another partner, another count
    assert window.hit("chirp", at=1.2) is None  # the refusal at 0.5 did not extend the wait


def test_concurrent_hits_never_pass_the_limit() -> None:
    window = MovingWindow(parse("100/minute"))
    allowed: list[bool] = []

    def hammer() -> None:
        for _ in range(50):
            allowed.append(window.hit("chirp", at=1.0) is None)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 100


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://cache.internal",  # port and database default (6379, 0)
        "rediss://:secret@cache.internal:6380/2",  # TLS, with a password
        "redis://[::1]:6379/1?socket_timeout=0.2",  # IPv6; redis-py's options in the query
    ],
)
def test_a_redis_url_is_accepted_as_the_store(url: str) -> None:
    assert ApiSettings(rate_limit_store=url).rate_limit_store == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("localhost:6379", "not a Redis URL"),  # no scheme: urlsplit reads localhost as one
        ("http://cache:6379/0", "not a Redis URL"),  # another scheme
        ("redis://", "no host"),
        ("redis://cache:63x9/0", "not a port number"),
        ("redis://cache:70000/0", "not a port number"),
        ("redis://cache:6379/accord", "database of a Redis URL is a number"),
        ("redis://:hunter2@cache/0?socket_timeout=soon", "socket_timeout"),  # a bad option
    ],
)
def test_a_malformed_store_url_is_refused_saying_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ApiSettings(rate_limit_store=url)
    (error,) = caught.value.errors()
    assert error["loc"] == ("rate_limit_store",)
    assert problem in error["msg"]
    assert "hunter2" not in str(caught.value.errors()[0]["msg"])  # the password is not echoed


def test_accord_serve_names_the_bad_setting_and_exits_2(tmp_path: Path) -> None:
    for party in ("chirp", "reelix"):
        (tmp_path / f"{party}.db").touch()
    command = typer.Typer()
    command.command()(serve)
    result = CliRunner().invoke(
        command,
        ["--scenario", str(tmp_path)],
        env={"ACCORD_API_RATE_LIMIT_STORE": "redis://cache:port/0"},
    )
    assert result.exit_code == 2
    assert "ACCORD_API_RATE_LIMIT_STORE" in result.output
    assert "not a port number" in result.output


def test_the_store_is_shown_without_its_password_or_options() -> None:
    assert shown("rediss://user:pw@cache:6380/2?socket_timeout=1") == "rediss://cache:6380/2"
    assert shown("redis://[::1]/0") == "redis://[::1]/0"


def test_each_deployment_has_its_own_key_prefix() -> None:
    one = deployment_prefix("postgresql+psycopg://db/accord")
    assert one == deployment_prefix("postgresql+psycopg://db/accord")  # every worker and host
    assert one != deployment_prefix("postgresql+psycopg://db/accord2")
    assert re.fullmatch(r"accord:[0-9a-f]{16}", one)  # short, without the store's name
