"""draw's HTTP export: ``GET /api/draw/<board>.json`` returns a board's live objects, to whoever may subscribe
to ``draw:<board>`` (the same policy and ``hub_authorize`` hooks as a ``sub``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException

from hub import Hub, HubError, Identity, hookimpl
from hub.auth import AuthError, anonymous_identity
from hub.store import StoreUnavailable
from plugins.draw.handlers import BoardStore, draw
from plugins.draw.messages import BoardExport

_BEARER = {"WWW-Authenticate": "Bearer"}


def identify(hub: Hub, authorization: str | None) -> Identity:
    """The caller, from ``Authorization: Bearer <jwt>``; a guest without one when the hub allows guests.

    A token that is present but bad is refused even when guests are allowed, as on the socket.
    """
    if authorization is None:
        if hub.settings.anonymous:
            return anonymous_identity()
        raise HTTPException(401, "Send 'Authorization: Bearer <token>'.", headers=_BEARER)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "The Authorization header must be 'Bearer <token>'.", headers=_BEARER)
    try:
        return hub.authenticator.verify(token.strip())
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers=_BEARER) from None


@hookimpl
def hub_http_routes(hub: Hub) -> APIRouter:
    router = APIRouter(prefix="/api/draw", tags=["draw"])

    @router.get("/{board}.json")
    async def export_board(board: str, authorization: Annotated[str | None, Header()] = None) -> BoardExport:
        """The board's live objects in drawing order, with their versions; an empty board has none."""
        channel = f"{draw.namespace}:{board}"
        try:
            _spec, room = hub.router.resolve(channel)
        except HubError:
            raise HTTPException(404, f"No board {board!r}: board names are letters, digits and _ . @ = + -.") from None
        identity = identify(hub, authorization)
        if not (draw.can_subscribe(identity, room) and hub.plugins.authorize(identity, "subscribe", channel, None)):
            raise HTTPException(403, f"{identity.name} may not read {channel!r}.")
        try:
            loaded = await BoardStore(hub.store_for(draw.namespace), room).load()
        except StoreUnavailable:
            raise HTTPException(503, "The store is unavailable; retry shortly.") from None
        return BoardExport(board=room, gen=loaded.meta.gen, objects=loaded.objects)

    return router
