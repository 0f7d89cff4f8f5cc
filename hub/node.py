"""Node: what a running node offers the layers below it — the plugin API (:class:`hub.Hub`) and
:class:`hub.Context`. :class:`hub.runtime.Runtime` implements it; those layers depend on this protocol instead,
so no module below the runtime imports it (the import graph of hub/ has no cycle)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pydantic import BaseModel

    from hub.broker import MidDone
    from hub.lease import Lease
    from hub.listener import Listener, OnEvent
    from hub.metrics import Metrics
    from hub.settings import HubSettings
    from hub.store import PluginStore
    from hub.types import Identity, PresenceMember


class Node(Protocol):
    """One running node, as plugins' Hubs and handlers' Contexts reach it."""

    node_id: str
    settings: HubSettings
    metrics: Metrics

    async def publish(
        self,
        channel: str,
        event_type: str,
        data: BaseModel,
        *,
        ephemeral: bool = False,
        mid: MidDone | None = None,
        record: tuple[str, str] | None = None,
    ) -> int | None:
        """Publish one event to every subscriber of ``channel`` on every node; its offset, if it has one.
        ``record``: (namespace, key) of the store to write the event's data to first, or in the same step."""
        ...

    async def listen(self, channel: str, on_event: OnEvent) -> Listener: ...

    async def interest(self, channel: str) -> int: ...

    def local_subscribers(self, channel: str) -> int: ...

    async def presence(self, channel: str) -> list[PresenceMember]: ...

    def revoke(
        self, channel: str, who: Callable[[Identity], bool], *, code: str = "forbidden", msg: str | None = None
    ) -> int: ...

    def store_for(self, namespace: str) -> PluginStore: ...

    def lease(self, name: str, ttl: float) -> Lease: ...

    def limit_websocket_frames(self, path_prefix: str, max_bytes: int) -> None: ...

    async def verify_token(self, token: str | None) -> Identity: ...

    def authenticate(self, authorization: str | None) -> Identity: ...

    def authenticate_publisher(self, authorization: str | None, api_key: str | None, *, scope: str) -> Identity: ...

    def authorize_read(self, identity: Identity, channel: str) -> str: ...
