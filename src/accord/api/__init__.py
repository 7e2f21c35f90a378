"""The partner API over HTTP: OAuth 2.0, granular permissions, review, expiry, revocation.

Modules: :mod:`~accord.api.app` (the factory), :mod:`~accord.api.oauth` (the authorization
server, on Authlib), :mod:`~accord.api.screens` (the OAuth endpoints and consent screens),
:mod:`~accord.api.routes` (exchanges through the one door, a person's permissions),
:mod:`~accord.api.access` (what a token reaches), :mod:`~accord.api.apps` (apps, reviews, grants,
codes and tokens in the store), :mod:`~accord.api.scopes` (permissions), :mod:`~accord.api.tables`,
:mod:`~accord.api.problems` (RFC 9457), :mod:`~accord.api.middleware`, :mod:`~accord.api.cli`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accord.api.app import create_app
    from accord.api.apps import GRANT_DAYS, App, PartnerApps
    from accord.api.scopes import Scope
    from accord.api.settings import API_SETTINGS, ApiSettings

__all__ = ["API_SETTINGS", "GRANT_DAYS", "ApiSettings", "App", "PartnerApps", "Scope", "create_app"]

# Each name is imported from its module when first used (PEP 562): importing a module of the
# package (the ``accord serve`` command, the API's tables) loads the web stack only if it needs it.
_HOMES = {
    "API_SETTINGS": "accord.api.settings",
    "ApiSettings": "accord.api.settings",
    "App": "accord.api.apps",
    "GRANT_DAYS": "accord.api.apps",
    "PartnerApps": "accord.api.apps",
    "Scope": "accord.api.scopes",
    "create_app": "accord.api.app",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home), name)
