"""Identifiers for private matching: e-mail addresses and phone numbers, normalised.

Two lists match only on identifiers written the same way, so both sides normalise first:

* **E-mail**: Unicode NFC, surrounding space and a trailing dot of the domain dropped, the domain
  lower-cased and written in ASCII (IDNA, RFC 5891), the local part lower-cased (every large
  provider treats it so, although RFC 5321 §2.4 lets a server tell case apart). Dots in the local
  part and ``+tag`` sub-addresses are removed **only** for providers that document that they
  ignore them (:data:`PROVIDERS`): ``Jane.Doe+news@GoogleMail.com`` is ``janedoe@gmail.com``,
  but ``jane.doe+news@example.org`` stays ``jane.doe+news@example.org``.
* **Phone**: parsed with ``phonenumbers`` (Google's libphonenumber rules) and written in E.164
  (ITU-T E.164: ``+`` then country code and number); a number without a country code needs the
  default region. Numbers that are not valid for their region are refused.

What goes into the hash is ``kind:value`` (``email:janedoe@gmail.com``), so an e-mail address and
a phone number can never collide.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import phonenumbers

from accord.errors import InvalidInput
from accord.pets.psi.choices import Kind


@dataclass(frozen=True, slots=True)
class Provider:
    """What a mail provider says it ignores in the local part of its addresses."""

    canonical_domain: str
    ignores_dots: bool
    ignores_plus_tag: bool


_GMAIL = Provider("gmail.com", ignores_dots=True, ignores_plus_tag=True)
_OUTLOOK = Provider("outlook.com", ignores_dots=False, ignores_plus_tag=True)

PROVIDERS: dict[str, Provider] = {
    # Google: "Gmail doesn't recognise dots as characters within usernames"; "+anything" is
    # delivered to the same inbox; googlemail.com is the same mailbox as gmail.com.
    "gmail.com": _GMAIL,
    "googlemail.com": _GMAIL,
    # Microsoft (plus addressing in Outlook.com), Apple (iCloud+ "plus" aliases) and Fastmail
    # deliver "+tag" to the same mailbox but treat dots as part of the name.
    "outlook.com": _OUTLOOK,
    "hotmail.com": Provider("hotmail.com", ignores_dots=False, ignores_plus_tag=True),
    "live.com": Provider("live.com", ignores_dots=False, ignores_plus_tag=True),
    "icloud.com": Provider("icloud.com", ignores_dots=False, ignores_plus_tag=True),
    "me.com": Provider("me.com", ignores_dots=False, ignores_plus_tag=True),
    "fastmail.com": Provider("fastmail.com", ignores_dots=False, ignores_plus_tag=True),
}
"""Providers whose documented rules let two spellings name one mailbox, by domain."""


def normalise_email(value: str) -> str:
    """The canonical form of an e-mail address (see the module docstring); refuses non-addresses."""
    text = unicodedata.normalize("NFC", value).strip()
    local, at, domain = text.rpartition("@")
    domain = domain.rstrip(".")
    if not at or not local or not domain or any(ch.isspace() for ch in text):
        raise InvalidInput(f"{value!r} is not an e-mail address (local-part@domain)")
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise InvalidInput(f"the domain of {value!r} is not a valid domain name: {exc}") from exc
    local = local.lower()
    provider = PROVIDERS.get(domain)
    if provider is not None:
        domain = provider.canonical_domain
        if provider.ignores_plus_tag:
            local = local.split("+", 1)[0]
        if provider.ignores_dots:
            local = local.replace(".", "")
        if not local:
            raise InvalidInput(f"{value!r} has no mailbox name once its tag is removed")
    return f"{local}@{domain}"


def normalise_phone(value: str, region: str | None = None) -> str:
    """The E.164 form of a phone number; ``region`` (e.g. ``"GB"``) for numbers without ``+``."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region or value.strip().startswith("+") else " (give a default region)"
        raise InvalidInput(f"{value!r} is not a phone number: {exc}{hint}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"{value!r} is not a valid phone number for its region")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise(kind: Kind, value: str, *, region: str | None = None) -> str:
    """``value`` normalised as an identifier of ``kind``."""
    if kind is Kind.EMAIL:
        return normalise_email(value)
    return normalise_phone(value, region)


def encode(kind: Kind, normalised: str) -> bytes:
    """The bytes hashed onto the curve for a normalised identifier: ``kind:value`` in UTF-8."""
    return f"{kind.value}:{normalised}".encode()
