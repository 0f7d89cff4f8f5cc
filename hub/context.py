"""Context: what a handler, snapshot provider or access rule gets — identity, channel, store, publish, reply,
presence, revoke."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from hub.protocol import encode_event

if TYPE_CHECKING:
    from hub.broker import MidDone
    from hub.node import Node
    from hub.plugin_api import Hub
    from hub.store import PluginStore
    from hub.types import Identity, PresenceMember


class Caller(Protocol):
    """Whom a context replies to: a socket's :class:`hub.session.Session`, or a server API request
    (hub/control.py), which collects the replies for its answer."""

    @property
    def client_id(self) -> str: ...

    def push_event(self, channel: str, frame: str, offset: int | None, conflate: bool = False) -> None: ...


class EventSpec(Protocol):
    """What a context needs of its channel's declaration (a :class:`hub.Channel` is one)."""

    @property
    def namespace(self) -> str: ...

    @property
    def events(self) -> Mapping[str, type[BaseModel]]: ...


def check_event(spec: EventSpec, event_type: str, data: BaseModel) -> None:
    """Publishing an undeclared event type, or the wrong model for it, is a bug in the plugin."""
    model = spec.events.get(event_type)
    if model is None:
        raise ValueError(f"event type {event_type!r} is not declared on channel '{spec.namespace}:*'")
    if not isinstance(data, model):
        raise TypeError(f"event {event_type!r} needs a {model.__name__}, got {type(data).__name__}")


class Context:
    """One request (or one subscribe) on one channel by one client."""

    __slots__ = ("_mid", "_node", "_session", "channel", "client_id", "hub", "identity", "mid_done", "room", "spec")

    def __init__(
        self,
        node: Node,
        hub: Hub,
        session: Caller,
        identity: Identity,
        channel: str,
        room: str,
        spec: EventSpec,
        *,
        mid: MidDone | None = None,
    ):
        self._mid = mid  # the request's claimed mid: marked done with the handler's first event
        self.mid_done = False
        self._node = node
        self.hub = hub
        """The :class:`hub.Hub` of the plugin that owns the channel."""
        self.identity = identity
        self.client_id = session.client_id
        self.channel = channel
        self.room = room
        self.spec = spec
        self._session = session

    @property
    def store(self) -> PluginStore:
        """The plugin's own slice of the durable store."""
        return self.hub.store

    async def publish(
        self,
        event_type: str,
        data: BaseModel,
        *,
        room: str | None = None,
        ephemeral: bool = False,
        store_key: str | None = None,
    ) -> int | None:
        """Publish an event to this channel (or another room of the same namespace) on every node; returns its
        offset on a recoverable channel.

        ``ephemeral`` events (typing indicators) skip history and get no offset.

        ``store_key``: publish and persist. The event's data is also written to the plugin's store under this key
        (its JSON, encoded once for both: ``ctx.store.get(store_key)`` returns it), no later than the event goes
        out: a client that reads the channel's position after the event (a late joiner's snapshot) finds the
        record. When store and broker are one Redis (the same URL, not a Cluster), one script puts the record and
        then publishes, in one round trip; otherwise (SQLite, or a Redis Cluster, where the store's keys and the
        channel are in different slots) the put, then the publish. A failed write publishes nothing and raises as
        ``ctx.store.put`` would (the client gets ``unavailable``). An ephemeral event cannot be stored
        (ValueError).
        """
        channel = self.channel if room is None else f"{self.spec.namespace}:{room}"
        mid = None
        if self._mid is not None and not self.mid_done:
            # The request's first event marks its mid done, in one step with the event: a retry after this
            # node dies is then a duplicate exactly when the event went out (protocol.md §8).
            mid, self.mid_done = self._mid, True
        try:
            record = (self.hub.name, store_key) if store_key is not None else None
            return await self._node.publish(channel, event_type, data, ephemeral=ephemeral, mid=mid, record=record)
        except BaseException:
            if mid is not None:
                self.mid_done = False  # (whether the broker did it is unknown; the caller releases the claim)
            raise

    def reply(self, event_type: str, data: BaseModel) -> None:
        """Send an event to the calling client only."""
        check_event(self.spec, event_type, data)
        # Through push_event, so a reply made while subscribing waits for the sub's ok like live events do.
        self._session.push_event(
            self.channel, encode_event(self.channel, event_type, data.model_dump_json(), None), None
        )

    async def presence(self) -> list[PresenceMember]:
        return await self._node.presence(self.channel)

    def revoke(self, who: Callable[[Identity], bool], *, code: str = "forbidden", msg: str | None = None) -> int:
        """End this channel's subscriptions of the identities ``who`` selects, on this node (:meth:`Hub.revoke`)."""
        return self._node.revoke(self.channel, who, code=code, msg=msg)
