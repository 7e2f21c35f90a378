"""The partner API's settings, read from the environment with the prefix ``ACCORD_API_``."""

from __future__ import annotations

from limits import parse as parse_limit
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from accord.api.oauth import MAX_TOKEN_SECONDS
from accord.api.ratelimit import check_store_url


class ApiSettings(BaseSettings):
    """Settings of ``accord serve``; each has a description for the CLI help and the docs."""

    model_config = SettingsConfigDict(env_prefix="ACCORD_API_", extra="ignore")

    token_seconds: int = Field(
        default=MAX_TOKEN_SECONDS,
        ge=1,
        le=MAX_TOKEN_SECONDS,
        description="How long an access token lives, in seconds (at most an hour).",
    )
    rate_limit: str = Field(
        default="1200/minute",
        description=(
            "Requests a partner may make (all its apps) in a moving window, e.g. '1200/minute'; "
            "counted per worker unless ACCORD_API_RATE_LIMIT_STORE is set."
        ),
    )
    rate_limit_store: str | None = Field(
        default=None,
        description=(
            "Where the rate limit counts: unset, in each worker's memory (each worker allows a "
            "partner the whole limit); redis://host:port/db, one moving window per partner in "
            "that Redis, shared by every worker and host. If Redis cannot be reached, requests "
            "are refused (503), never served unlimited."
        ),
    )
    rate_limit_prefix: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description=(
            "Prefix of this deployment's rate-limit keys in Redis; unset: derived from the "
            "Accord store's URL, so two Accords on one Redis count apart (set it when hosts "
            "name one store differently)."
        ),
    )
    refusal_limit: str = Field(
        default="60/minute",
        description=(
            "Requests with a refused token (none, unknown, expired, revoked) one client address "
            "may make in a moving window, e.g. '60/minute' (an IPv6 address counts by its /64). "
            "Each is logged to the ledger; past the limit, every request from the address is "
            "answered 429 until the window frees, and counted instead of logged one by one. "
            "Counted where ACCORD_API_RATE_LIMIT_STORE says."
        ),
    )
    refusal_log_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "How often the requests refused past ACCORD_API_REFUSAL_LIMIT are logged to the "
            "ledger, as one entry saying how many (and when the server stops)."
        ),
    )
    erasure_deadline_days: int = Field(
        default=30,
        ge=1,
        le=90,
        description=(
            "Days a recipient has to acknowledge an erasure notice (GDPR Art. 19) before it is "
            "overdue and told again: one month by default, as Art. 12(3) gives the controller; "
            "at most three, the extension it allows."
        ),
    )
    checkpoint_seconds: float = Field(
        default=60.0,
        ge=0,
        description=(
            "How often the server signs a ledger checkpoint when the log has grown (and once when "
            "it starts), so that new entries can be proved; pages only read. 0: never (sign them "
            "with a scheduled `accord ledger checkpoint`)."
        ),
    )
    exchange_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds an exchange, or any other request (a token, a page), may take before it is "
            "answered 503 and abandoned (a store that stalls); an abandoned exchange logs its "
            "failure, never its release, and an abandoned token request issues no token."
        ),
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted, in bytes."
    )
    secret: str | None = Field(
        default=None,
        description=(
            "Key that signs sign-in cookies and consent forms; unset: a random key per process "
            "(set it when several workers serve together)."
        ),
    )
    issuer: str | None = Field(
        default=None,
        description="The authorization server's issuer URL (RFC 8414); unset: the request's base.",
    )

    @field_validator("rate_limit", "refusal_limit")
    @classmethod
    def _a_limit(cls, value: str) -> str:
        try:
            parse_limit(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '1200/minute': {value!r}") from exc
        return value

    @field_validator("rate_limit_store")
    @classmethod
    def _a_store(cls, value: str | None) -> str | None:
        return None if value is None else check_store_url(value)


API_SETTINGS: dict[str, str] = {
    f"ACCORD_API_{name.upper()}": (field.description or "")
    for name, field in ApiSettings.model_fields.items()
}
