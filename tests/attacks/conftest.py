"""The partner API's world, served on a loopback port, for adversarial tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from api.world import World, build_world, serving


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with build_world(tmp_path_factory.mktemp("attacks")) as built:
        yield built


@pytest.fixture(scope="module")
def base_url(world: World) -> Iterator[str]:
    with serving(world.app) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as c:
        yield c
