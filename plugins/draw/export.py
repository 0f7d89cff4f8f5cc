"""draw's HTTP export: ``GET /api/draw/<board>.json`` returns a board's live objects, to whoever may subscribe
to ``draw:<board>`` (the same policy and ``hub_authorize`` hooks as a ``sub``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException

from hub import Hub, StoreUnavailable
from hub_realtime_plugins.draw.messages import BoardExport
from hub_realtime_plugins.draw.store import BoardStore


def export_routes(hub: Hub, namespace: str) -> APIRouter:
    """The export of the boards of channel family ``namespace``, read from ``hub``'s store."""
    router = APIRouter(prefix="/api/draw", tags=["draw"])

    @router.get("/{board}.json")
    async def export_board(board: str, authorization: Annotated[str | None, Header()] = None) -> BoardExport:
        """The board's live objects in drawing order, with their versions; an empty board has none."""
        identity = hub.authenticate(authorization)
        room = hub.authorize_read(identity, f"{namespace}:{board}")
        try:
            loaded = await BoardStore(hub.store, room).load()
        except StoreUnavailable:
            raise HTTPException(503, "The store is unavailable; retry shortly.") from None
        return BoardExport(board=room, gen=loaded.meta.gen, objects=loaded.objects)

    return router
