"""Auth for a plugin's HTTP routes, with the socket's rules: the same JWTs and guests, the same channel
policies and ``hub_authorize`` hooks. Failures are HTTPExceptions a route can let through."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import HTTPException

from hub.auth import AuthError, anonymous_identity
from hub.errors import HubError
from hub.types import Identity

if TYPE_CHECKING:
    from hub.runtime import Hub

_BEARER = {"WWW-Authenticate": "Bearer"}


def request_identity(hub: Hub, authorization: str | None) -> Identity:
    """The caller, from an ``Authorization: Bearer <jwt>`` header (a user's token or a guest's resume token);
    a new guest without one when the hub allows guests. 401 otherwise. A token that is present but bad is
    refused even when guests are allowed, as on the socket."""
    if authorization is None:
        if hub.settings.anonymous:
            return anonymous_identity()
        raise HTTPException(401, "Send 'Authorization: Bearer <token>'.", headers=_BEARER)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "The Authorization header must be 'Bearer <token>'.", headers=_BEARER)
    try:
        identity = hub.authenticator.verify(token.strip())
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers=_BEARER) from None
    if identity.anonymous and not hub.settings.anonymous:
        raise HTTPException(401, "Guests are not allowed on this hub; sign in.", headers=_BEARER)
    return identity


def check_subscribe(hub: Hub, identity: Identity, channel: str) -> str:
    """May ``identity`` read ``channel`` (as a ``sub`` would be allowed)? Returns the room; 404 for a channel
    no plugin owns or a bad name, 403 when the channel's policy or a ``hub_authorize`` hook refuses."""
    try:
        spec, room = hub.router.resolve(channel)
    except HubError as exc:
        raise HTTPException(404, exc.msg) from None
    if not (spec.can_subscribe(identity, room) and hub.plugins.authorize(identity, "subscribe", channel, None)):
        raise HTTPException(403, f"{identity.name} may not read {channel!r}.")
    return room
