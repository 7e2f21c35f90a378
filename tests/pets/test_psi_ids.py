"""Identifiers are normalised the way each provider and numbering plan says, and no further."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.errors import InvalidInput
from accord.pets.psi.choices import Kind
from accord.pets.psi.ids import encode, normalise, normalise_email, normalise_phone

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jane.Doe@Example.ORG", "jane.doe@example.org"),  # case folds everywhere
        ("  jane@example.org  ", "jane@example.org"),  # surrounding space
        ("jane.doe+news@example.org", "jane.doe+news@example.org"),  # unknown provider: kept
        ("Jane.Doe+news@GMail.com", "janedoe@gmail.com"),  # Gmail ignores dots and +tags
        ("j.a.n.e@googlemail.com", "jane@gmail.com"),  # googlemail is Gmail
        ("jane.doe+x@outlook.com", "jane.doe@outlook.com"),  # Outlook: +tags only
        ("jane.doe+x@icloud.com", "jane.doe@icloud.com"),  # iCloud: +tags only
        ("jane@example.org.", "jane@example.org"),  # a trailing dot of the domain
        ("Jürgen@München.DE", "jürgen@xn--mnchen-3ya.de"),  # IDNA domain, Unicode local part
        ("Jürgen@xn--mnchen-3ya.de", "jürgen@xn--mnchen-3ya.de"),  # the same, already ASCII
        ("Ju\u0308rgen@example.org", "jürgen@example.org"),  # NFC: combining umlaut composed
    ],
)
def test_email_normalisation(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "no-at-sign",  # not an address
        "@example.org",  # no local part
        "jane@",  # no domain
        "ja ne@example.org",  # a space inside
        "+tag@gmail.com",  # nothing left once the tag goes
    ],
)
def test_bad_email_is_refused_with_the_value(raw: str) -> None:
    with pytest.raises(InvalidInput, match=r"e-mail|mailbox"):
        normalise_email(raw)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 415-555-2671", None, "+14155552671"),  # international, punctuated
        ("(415) 555-2671", "US", "+14155552671"),  # national, with a default region
        ("tel:+1-415-555-2671", None, "+14155552671"),  # RFC 3966
        ("020 7946 0018", "GB", "+442079460018"),  # UK national with trunk 0
        ("+44 (0)20 7946 0018", None, "+442079460018"),  # the (0) written in
        ("030 123456", "DE", "+4930123456"),  # Berlin
    ],
)
def test_phone_normalisation_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "message"),
    [
        ("415-555-2671", None, "give a default region"),  # national without a region
        ("+1 000", None, "not a valid phone number"),  # too short for its plan
        ("call me", "US", "not a phone number"),  # not digits at all
    ],
)
def test_bad_phone_is_refused(raw: str, region: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        normalise_phone(raw, region)


REGIONS = ("US", "GB", "DE", "FR", "BR", "JP", "IN", "AU")
FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
)


@given(st.sampled_from(REGIONS), st.sampled_from(FORMATS))
def test_every_format_of_a_number_normalises_alike(region: str, fmt: int) -> None:
    number = phonenumbers.example_number(region)
    assert number is not None
    written = phonenumbers.format_number(number, fmt)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert normalise(Kind.PHONE, written, region=region) == e164


def test_kinds_are_kept_apart_in_what_is_hashed() -> None:
    assert encode(Kind.EMAIL, "x") != encode(Kind.PHONE, "x")
    assert encode(Kind.PHONE, "+14155552671") == b"phone:+14155552671"
