"""Permissions as (category, purpose) pairs, and whom a token may act for: properties and tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord import agreements as ag
from accord import taxonomy
from accord.api.access import NO_DELEGATION, NOT_THIS_PERSON, Access, Caller
from accord.api.apps import App, Token
from accord.api.errors import Forbidden
from accord.api.scopes import Scope, covered, offered, parse_all, render
from accord.consent import Operation
from accord.errors import InvalidInput
from accord.requests import Request, Subjects, SubjectsKind

pytestmark = pytest.mark.unit

EXAMPLE = ag.parse(
    (resources.files("accord") / "examples" / "chirp-reelix.yaml").read_text(), source="x"
)
CATEGORIES = sorted(taxonomy.terms(taxonomy.Kind.CATEGORY))
PURPOSES = sorted(taxonomy.terms(taxonomy.Kind.PURPOSE))
scopes = st.builds(
    Scope, st.sampled_from(CATEGORIES), st.sampled_from(PURPOSES), st.sampled_from(Operation)
)


@given(scopes)
def test_a_scope_reads_back_as_itself(scope: Scope) -> None:
    assert Scope.parse(str(scope)) == scope
    assert " " not in str(scope)


@given(st.sets(scopes, max_size=8))
def test_a_scope_string_reads_back_as_the_same_set(held: set[Scope]) -> None:
    assert parse_all(render(held)) == held


@given(scopes, scopes)
def test_a_scope_covers_only_narrower_pairs_of_its_own_operation(a: Scope, b: Scope) -> None:
    expected = (
        a.operation is b.operation
        and taxonomy.covers(a.category, b.category)
        and taxonomy.covers(a.purpose, b.purpose)
    )
    assert covered(b, [a]) == expected
    assert covered(a, [a])


@pytest.mark.parametrize(
    "text",
    [
        "user.social",  # no purpose
        "user.social:functional.service:read",  # only ':write' may follow
        "user.nonsense:functional.service",  # unknown category
        "user.social:nonsense",  # unknown purpose
        "",
    ],
)
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        Scope.parse(text)


def test_each_party_is_offered_only_the_pairs_it_asks_for() -> None:
    reelix = {str(s) for s in offered(EXAMPLE, "reelix")}
    chirp = {str(s) for s in offered(EXAMPLE, "chirp")}
    assert reelix == {
        "user.social:functional.service",
        "user.content.private:functional.service",
        "user.content.private:functional.service:write",
    }
    assert "user.behavior:analytics.reporting.content_performance" in chirp
    assert not reelix & chirp
    assert offered(EXAMPLE, "nobody") == {}


def _caller(person: str | None) -> Caller:
    now = datetime.now(UTC)
    app = App("app1", "App", "reelix", "chirp-reelix", None, (), now)
    token = Token(b"", app, person, frozenset(), now, now + timedelta(hours=1), None)
    return Caller(token, frozenset())


def _request(**kw: object) -> Request:
    fields: dict[str, object] = {
        "requester": "reelix",
        "agreement": "chirp-reelix",
        "clause": "friend-picker",
        "operation": Operation.READ,
        "purpose": "functional.service",
        "categories": frozenset({"user.social"}),
        "at": datetime.now(UTC),
    }
    fields.update(kw)
    return Request(**fields)  # type: ignore[arg-type]


P = "c0000001"
OTHER = "c0000002"


@pytest.mark.parametrize(
    ("person", "request_kw", "rule"),
    [
        # A person's token: the person, about themselves, in any relative form.
        (P, {"subjects": Subjects(SubjectsKind.FRIENDS_OF, anchor=P)}, None),
        (P, {"subjects": Subjects(SubjectsKind.THREADS_OF, anchor=P)}, None),
        (P, {"subjects": Subjects(SubjectsKind.PEOPLE, frozenset({P}))}, None),
        # ... never about someone else, nor for someone else, nor everyone.
        (P, {"subjects": Subjects(SubjectsKind.FRIENDS_OF, anchor=OTHER)}, NOT_THIS_PERSON),
        (P, {"subjects": Subjects(SubjectsKind.PEOPLE, frozenset({P, OTHER}))}, NOT_THIS_PERSON),
        (
            P,
            {"subjects": Subjects(SubjectsKind.PEOPLE, frozenset({P})), "on_behalf_of": OTHER},
            NOT_THIS_PERSON,
        ),
        (P, {}, NOT_THIS_PERSON),
        # An app's own token: everyone or named people, never for or around a person.
        (None, {}, None),
        (None, {"subjects": Subjects(SubjectsKind.PEOPLE, frozenset({OTHER}))}, None),
        (None, {"subjects": Subjects(SubjectsKind.FRIENDS_OF, anchor=P)}, NO_DELEGATION),
        (None, {"on_behalf_of": P}, NO_DELEGATION),
    ],
)
def test_whom_a_token_acts_for(
    person: str | None, request_kw: dict[str, object], rule: str | None
) -> None:
    access = Access.__new__(Access)
    caller = _caller(person)
    if rule is None:
        made = access._as_person(caller, _request(**request_kw))
        assert made.on_behalf_of == person
    else:
        with pytest.raises(Forbidden) as refused:
            access._as_person(caller, _request(**request_kw))
        assert refused.value.rule == rule


def test_access_tokens_live_at_most_an_hour() -> None:
    from pydantic import ValidationError

    from accord.api import ApiSettings
    from accord.api.oauth import MAX_TOKEN_SECONDS, OAuthServer

    assert MAX_TOKEN_SECONDS == 3600
    assert ApiSettings().token_seconds <= 3600
    with pytest.raises(ValidationError):
        ApiSettings(token_seconds=3601)
    with pytest.raises(InvalidInput, match="1 to 3600"):
        OAuthServer(None, issuer=None, token_seconds=7200)  # type: ignore[arg-type]


def test_a_rate_limit_that_is_not_one_is_refused() -> None:
    from pydantic import ValidationError

    from accord.api import ApiSettings

    assert ApiSettings(rate_limit="10/second").rate_limit == "10/second"
    with pytest.raises(ValidationError, match="not a rate limit"):
        ApiSettings(rate_limit="lots")
