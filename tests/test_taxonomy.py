from __future__ import annotations

import pytest

from accord import taxonomy
from accord.errors import TaxonomyError
from accord.taxonomy import Kind

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        (Kind.CATEGORY, "user.behavior.media_consumption"),
        (Kind.CATEGORY, "user.content.private"),
        (Kind.PURPOSE, "marketing.advertising.third_party.targeted"),
        (Kind.SUBJECT, "customer"),
        (Kind.CATEGORY, "user.account.linked"),  # Accord's own addition
    ],
)
def test_known_keys_validate(kind: Kind, key: str) -> None:
    assert taxonomy.validate(kind, key) == key


@pytest.mark.parametrize(
    ("kind", "key", "suggestion"),
    [
        (Kind.CATEGORY, "user.behaviour.media_consumption", "user.behavior.media_consumption"),
        (Kind.CATEGORY, "user.content.privte", "user.content.private"),
        (Kind.PURPOSE, "marketing.advertising.thirdparty", "marketing.advertising.third_party"),
        (Kind.SUBJECT, "costumer", "customer"),
    ],
)
def test_unknown_keys_suggest_the_nearest(kind: Kind, key: str, suggestion: str) -> None:
    with pytest.raises(TaxonomyError) as err:
        taxonomy.validate(kind, key)
    assert f"unknown {kind} {key!r}" in str(err.value)
    assert repr(suggestion) in str(err.value)


def test_unknown_key_far_from_everything_has_no_suggestion() -> None:
    with pytest.raises(TaxonomyError) as err:
        taxonomy.validate(Kind.PURPOSE, "zzzzzz")
    assert "did you mean" not in str(err.value)


@pytest.mark.parametrize(
    ("general", "specific", "expected"),
    [
        ("user.behavior", "user.behavior.media_consumption", True),
        ("user.behavior.media_consumption", "user.behavior.media_consumption", True),
        ("user.behavior.media_consumption", "user.behavior", False),  # narrower never covers wider
        ("user.content", "user.contact.email", False),  # a shared prefix is not an ancestor
    ],
)
def test_covers(general: str, specific: str, expected: bool) -> None:
    assert taxonomy.covers(general, specific) is expected


def test_expand_and_ancestors() -> None:
    assert taxonomy.ancestors("a.b.c") == ("a.b.c", "a.b", "a")
    below = taxonomy.expand(Kind.CATEGORY, ["user.content"])
    assert {"user.content", "user.content.private", "user.content.public"} <= below
    assert all(k.startswith("user.content") for k in below)
