"""The partner API's tables in the Accord store (created by migration ``0003_api``; a token's
code and a code's use by ``0019_code_tokens``).

* ``api_apps``: partner apps (OAuth 2.0 clients, RFC 6749 section 2), each registered against one
  agreement for one of its parties; a confidential app's secret is kept only as its SHA-256.
* ``api_reviews``: recorded app reviews, one row per permission judged; the newest decides.
* ``api_test_people``: the partner's own test people, for whom an unreviewed permission works.
* ``api_grants``: a person's grant of one permission to one app, with its consent and expiry.
* ``api_codes``: authorization codes (RFC 6749 section 4.1) by hash, with their PKCE challenge,
  kept once used (marked) so that a second use is known as one.
* ``api_tokens``: access tokens by hash, never the token itself, with the code each was issued
  from.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from accord.store.engine import Base
from accord.store.types import UTCDateTime


class ApiApp(Base):
    """A partner app: an OAuth client of one party under one agreement."""

    __tablename__ = "api_apps"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    party: Mapped[str] = mapped_column(String(255), nullable=False)
    agreement: Mapped[str] = mapped_column(String(255), nullable=False)
    secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    """SHA-256 of the client secret; None for a public client (PKCE only)."""
    redirect_uris: Mapped[str] = mapped_column(Text, nullable=False)
    """Registered redirect URIs, one a line."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiReview(Base):
    """A recorded review of one permission of one app."""

    __tablename__ = "api_reviews"
    __table_args__ = (Index("ix_api_reviews_client", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("api_apps.client_id"), nullable=False
    )
    scope: Mapped[str] = mapped_column(String(255), nullable=False)
    approved: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reviewer: Mapped[str] = mapped_column(String(255), nullable=False)
    findings: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class ApiTestPerson(Base):
    """One of the partner's own test people, by their id at the party holding their data."""

    __tablename__ = "api_test_people"

    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("api_apps.client_id"), primary_key=True
    )
    person: Mapped[str] = mapped_column(String(255), primary_key=True)


class ApiGrant(Base):
    """A person's grant of one permission to one app: in force until it expires or is revoked."""

    __tablename__ = "api_grants"
    __table_args__ = (Index("ix_api_grants_app_person", "client_id", "person"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("api_apps.client_id"), nullable=False
    )
    person: Mapped[str] = mapped_column(String(255), nullable=False)
    controller: Mapped[str] = mapped_column(String(255), nullable=False)
    scope: Mapped[str] = mapped_column(String(255), nullable=False)
    consent_id: Mapped[str] = mapped_column(String(255), nullable=False)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiCode(Base):
    """An authorization code, by its SHA-256, with the PKCE challenge it must answer."""

    __tablename__ = "api_codes"

    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("api_apps.client_id"), nullable=False
    )
    person: Mapped[str] = mapped_column(String(255), nullable=False)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    redirect_uri: Mapped[str] = mapped_column(Text, nullable=False)
    code_challenge: Mapped[str] = mapped_column(String(128), nullable=False)
    code_challenge_method: Mapped[str] = mapped_column(String(16), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """When a token was issued from it; a code is used once (RFC 6749 section 4.1.2)."""


class ApiToken(Base):
    """An access token, by its SHA-256: for the app alone, or for one person."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("ix_api_tokens_client", "client_id"),
        Index("ix_api_tokens_code", "code_hash"),
    )

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("api_apps.client_id"), nullable=False
    )
    person: Mapped[str | None] = mapped_column(String(255), nullable=True)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    code_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    """SHA-256 of the authorization code it was issued from; None for an app's own token."""


apps_table = cast(Table, ApiApp.__table__)
reviews_table = cast(Table, ApiReview.__table__)
test_people_table = cast(Table, ApiTestPerson.__table__)
grants_table = cast(Table, ApiGrant.__table__)
codes_table = cast(Table, ApiCode.__table__)
tokens_table = cast(Table, ApiToken.__table__)

API_TABLES: list[Table] = [
    apps_table,
    reviews_table,
    test_people_table,
    grants_table,
    codes_table,
    tokens_table,
]
