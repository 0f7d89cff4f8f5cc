"""Auth for a plugin's HTTP routes, with the socket's rules: the same JWTs and guests, the same channel
policies and ``hub_authorize`` hooks. Failures are HTTPExceptions a route can let through."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import HTTPException

from hub.auth import AuthError, anonymous_identity
from hub.errors import HubError
from hub.types import Identity

if TYPE_CHECKING:
    from hub.auth import Authenticator
    from hub.plugin_manager import PluginManager
    from hub.router import Router
    from hub.settings import HubSettings

_BEARER = {"WWW-Authenticate": "Bearer"}


def request_identity(settings: HubSettings, authenticator: Authenticator, authorization: str | None) -> Identity:
    """The caller, from an ``Authorization: Bearer <jwt>`` header (a user's token or a guest's resume token);
    a new guest without one when the hub allows guests. 401 otherwise. A token that is present but bad is
    refused even when guests are allowed, as on the socket."""
    if authorization is None:
        if settings.anonymous:
            return anonymous_identity()
        raise HTTPException(401, "Send 'Authorization: Bearer <token>'.", headers=_BEARER)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "The Authorization header must be 'Bearer <token>'.", headers=_BEARER)
    try:
        identity = authenticator.verify(token.strip())
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers=_BEARER) from None
    if identity.anonymous and not settings.anonymous:
        raise HTTPException(401, "Guests are not allowed on this hub; sign in.", headers=_BEARER)
    return identity


API_KEY_USER = "api-key"
PUBLISH_SCOPE = "publish"
ADMIN_SCOPE = "admin"
"""A token with the admin scope may do everything a server-to-server endpoint offers, publishing included."""


def _known_key(settings: HubSettings, candidate: str) -> bool:
    """Compared in constant time with every configured key, so the reply time tells nothing about them."""
    found = False
    for key in settings.api_keys:
        found |= hmac.compare_digest(key.encode(), candidate.encode())
    return found


def request_publisher(
    settings: HubSettings,
    authenticator: Authenticator,
    authorization: str | None,
    api_key: str | None,
    *,
    scope: str = PUBLISH_SCOPE,
) -> Identity:
    """The caller of a server-to-server endpoint (a publish API, the server API): an API key from the hub's
    ``api_keys`` setting, sent as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``, or a JWT that carries
    ``scope`` or the ``admin`` scope.

    401 when nothing is sent, or the key or token is not valid; 403 for a valid token without either scope
    (guests never have one). An API key stands for the identity ``api-key`` with ``scope``: a key may do
    everything. Only headers are read, so a route that depends on this reads no body of a refused caller.
    """
    if api_key is not None:
        if not _known_key(settings, api_key.strip()):
            raise HTTPException(401, "Unknown API key.", headers=_BEARER)
        return Identity(user=API_KEY_USER, name="API key", scopes=frozenset({scope}))
    if authorization is None:
        raise HTTPException(
            401, f"Send 'X-API-Key: <key>' or 'Authorization: Bearer <token with the {scope} scope>'.", headers=_BEARER
        )
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise HTTPException(401, "The Authorization header must be 'Bearer <key or token>'.", headers=_BEARER)
    if credential.count(".") != 2:  # not shaped like a JWT: an API key
        if not _known_key(settings, credential):
            raise HTTPException(401, "Unknown API key.", headers=_BEARER)
        return Identity(user=API_KEY_USER, name="API key", scopes=frozenset({scope}))
    try:
        identity = authenticator.verify(credential)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers=_BEARER) from None
    if scope not in identity.scopes and ADMIN_SCOPE not in identity.scopes:
        raise HTTPException(403, f"The token of {identity.name} lacks the {scope!r} scope.")
    return identity


def check_subscribe(router: Router, plugins: PluginManager, identity: Identity, channel: str) -> str:
    """May ``identity`` read ``channel`` (as a ``sub`` would be allowed)? Returns the room; 404 for a channel
    no plugin owns or a bad name, 403 when the channel's policy or a ``hub_authorize`` hook refuses."""
    try:
        spec, room = router.resolve(channel)
    except HubError as exc:
        raise HTTPException(404, exc.msg) from None
    if not (spec.can_subscribe(identity, room) and plugins.authorize(identity, "subscribe", channel, None)):
        raise HTTPException(403, f"{identity.name} may not read {channel!r}.")
    return room
