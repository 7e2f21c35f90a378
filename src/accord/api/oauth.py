"""The OAuth 2.0 authorization server, on Authlib, for Starlette requests.

* RFC 6749: the client credentials grant (section 4.4) for an app acting for itself (reports,
  segments), and the authorization code grant (section 4.1) for access a person delegates;
* RFC 7636: PKCE, required on every authorization code, with ``S256`` only;
* RFC 6750: opaque bearer tokens, stored only as their SHA-256, living at most an hour;
* RFC 7662: token introspection; RFC 7009: token revocation; RFC 8414: server metadata.

Authlib's server is framework-free but synchronous: a route reads the form (asynchronously),
builds a :class:`FormRequest`, and runs the server in a worker thread.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, ClientCredentialsGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from accord.api.apps import App, Code, PartnerApps, Token
from accord.api.scopes import Scope, parse_all, render
from accord.errors import InvalidInput

MAX_TOKEN_SECONDS = 3600
"""Access tokens expire within an hour."""


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: dict[str, list[str]] = {}
        for key, value in items:
            self._data.setdefault(key, value)
            self._datalist.setdefault(key, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class FormRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth request read from Starlette: its query and (already awaited) form."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        query: Sequence[tuple[str, str]],
        form: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(query)
        self._form = dict(form)
        self.payload = _Payload([*query, *form])

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


async def read_request(request: Request) -> FormRequest:
    """The OAuth view of a Starlette request (the form is read here, once)."""
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        data = await request.form()
        form = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
    return FormRequest(
        request.method,
        str(request.url),
        request.headers,
        list(request.query_params.multi_items()),
        form,
    )


@dataclass(frozen=True, slots=True)
class Delegation:
    """The person behind an authorization: who they are and what they approved."""

    person: str
    scopes: frozenset[Scope]


def oauth_text(message: str) -> str:
    """``message`` in the characters RFC 6749 (section 5.2) allows in an ``error_description``
    (printable ASCII but ``"`` and ``\\``): a quote becomes ``'``, anything else not allowed
    ``?``. What a client sent is echoed in errors, and must not break the answer."""
    text = message.replace('"', "'").replace("\\", "/")
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _scopes_within(grant: Any, offered: frozenset[Scope]) -> None:
    try:
        asked = parse_all(grant.request.payload.scope)
    except InvalidInput as exc:
        raise InvalidScopeError(oauth_text(exc.message)) from exc
    outside = asked - offered
    if outside:
        raise InvalidScopeError(
            f"the app's agreement does not offer {render(outside)} to its party"
        )


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    """An app acting for itself; with no scope asked, it gets every scope it is offered."""

    def validate_requested_scope(self) -> None:
        server: OAuthServer = self.server
        _scopes_within(self, server.apps.offered(self.request.client))

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        server: OAuthServer = self.server
        asked = self.request.payload.scope or render(server.apps.offered(self.request.client))
        token = self.generate_token(scope=asked, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class _AuthorizationCode(AuthorizationCodeGrant):  # type: ignore[misc]
    """A person delegates some permissions; PKCE proves the code goes back to its app."""

    TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")

    def validate_requested_scope(self) -> None:
        server: OAuthServer = self.server
        _scopes_within(self, server.apps.offered(self.request.client))

    def save_authorization_code(self, code: str, request: FormRequest) -> None:
        server: OAuthServer = self.server
        delegation: Delegation = request.user
        server.apps.save_code(
            code,
            client_id=request.client.client_id,
            person=delegation.person,
            scopes=delegation.scopes,
            redirect_uri=request.payload.redirect_uri or request.client.get_default_redirect_uri(),
            code_challenge=request.payload.data.get("code_challenge", ""),
            code_challenge_method=request.payload.data.get("code_challenge_method", "plain"),
        )

    def query_authorization_code(self, code: str, client: App) -> Code | None:
        server: OAuthServer = self.server
        found = server.apps.find_code(code, client.client_id)
        if found is not None and found.used_at is not None:
            raise _replayed(server, found)
        return found

    def delete_authorization_code(self, authorization_code: Code) -> None:
        """Nothing: the code was marked used as its token was stored, and is kept so that a
        second use is known as one (see :meth:`PartnerApps.replayed_code`)."""

    def authenticate_user(self, authorization_code: Code) -> Delegation:
        return Delegation(authorization_code.person, parse_all(authorization_code.scope))


def _replayed(server: OAuthServer, code: Code) -> InvalidGrantError:
    """A code used a second time: every token issued from it revoked (RFC 6749 section 4.1.2:
    "If an authorization code is used more than once, the authorization server MUST deny the
    request and SHOULD revoke (when possible) all tokens previously issued based on that
    authorization code"), and the request denied."""
    server.apps.replayed_code(code)
    return InvalidGrantError(
        "the authorization code was used before; the tokens issued from it are revoked"
    )


class _S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE on every authorization request, with ``S256`` (RFC 7636 section 4.2; RFC 9700 2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256"
            )
        super().validate_code_challenge(grant, redirect_uri)


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")

    def query_token(self, token_string: str, _hint: str | None) -> Token | None:
        server: OAuthServer = self.server
        return server.apps.token(token_string)

    def check_permission(self, token: Token, client: App, _request: FormRequest) -> bool:
        # An app may look into its own tokens only.
        return bool(token.check_client(client))

    def introspect_token(self, token: Token) -> dict[str, Any]:
        server: OAuthServer = self.server
        scopes = token.scopes
        if token.person is not None:
            # A person's token reaches only what they still grant; with nothing left, it is dead.
            scopes = scopes & server.apps.live_scopes(token.app.client_id, token.person)
            if not scopes:
                return {"active": False}
        return {
            "active": True,
            "client_id": token.app.client_id,
            "token_type": "Bearer",
            "scope": render(scopes),
            "sub": token.person,
            "aud": token.app.agreement,
            "iss": server.issuer,
            "exp": int(token.expires_at.timestamp()),
            "iat": int(token.issued_at.timestamp()),
        }


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")

    def query_token(self, token_string: str, _hint: str | None) -> Token | None:
        server: OAuthServer = self.server
        return server.apps.token(token_string)

    def revoke_token(self, token: Token, _request: FormRequest) -> None:
        server: OAuthServer = self.server
        server.apps.revoke_token(token)


class OAuthServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server over :class:`PartnerApps`, answering Starlette responses."""

    def __init__(self, apps: PartnerApps, *, issuer: str | None, token_seconds: int) -> None:
        super().__init__()
        if not 0 < token_seconds <= MAX_TOKEN_SECONDS:
            raise InvalidInput(
                f"access tokens live 1 to {MAX_TOKEN_SECONDS} seconds; got {token_seconds}",
                where="token_seconds",
            )
        self.apps = apps
        self.issuer = issuer
        self.token_seconds = token_seconds
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: secrets.token_urlsafe(32),
                expires_generator=token_seconds,
            ),
        )
        self.register_grant(_ClientCredentials)
        self.register_grant(_AuthorizationCode, [_S256Only(required=True)])
        self.register_endpoint(_Introspection)
        self.register_endpoint(_Revocation)

    def query_client(self, client_id: str) -> App | None:
        app = self.apps.get(client_id)
        return None if app is None or app.revoked_at is not None else app

    def save_token(self, token: Mapping[str, Any], request: FormRequest) -> None:
        delegation: Delegation | None = request.user
        code: Code | None = getattr(request, "authorization_code", None)
        saved = self.apps.save_token(
            token["access_token"],
            client_id=request.client.client_id,
            person=None if delegation is None else delegation.person,
            scopes=parse_all(token.get("scope")),
            expires_in=int(token["expires_in"]),
            code=code,
        )
        if not saved and code is not None:
            # Another exchange of the same code got there first: a replay too.
            raise _replayed(self, code)

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(
        self, status: int, body: Any, headers: Sequence[tuple[str, str]]
    ) -> Response:
        extra = {k: v for k, v in headers if k.lower() not in {"content-type", "location"}}
        location = next((v for k, v in headers if k.lower() == "location"), None)
        if location is not None:
            return RedirectResponse(location, status_code=status, headers=extra)
        return JSONResponse(body if body is not None else {}, status_code=status, headers=extra)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's signals are not used."""

    def metadata(self, base: str) -> dict[str, Any]:
        """Server metadata (RFC 8414 section 2)."""
        return {
            "issuer": self.issuer or base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "scopes_supported": sorted({str(s) for a in self.apps.all_offered() for s in a}),
            "service_documentation": f"{base}/docs",
        }
