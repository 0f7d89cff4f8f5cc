"""Hub: the running core — settings, router, backends, fan-out, sessions — and the publish path."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from hub.admin import NAMESPACE as ADMIN_NAMESPACE
from hub.admin import OWNER as ADMIN_OWNER
from hub.admin import Admin
from hub.asgi_extensions import SHUTDOWN_REASON
from hub.auth import Authenticator, AuthError, anonymous_identity
from hub.broker import Broker, MidDone, StoreRecord, open_broker
from hub.context import check_event
from hub.control import Control
from hub.errors import HubError
from hub.fanout import Fanout
from hub.heartbeat import HeartbeatMonitor
from hub.http_auth import check_subscribe, request_identity, request_publisher
from hub.lease import Lease
from hub.listener import Listener, OnEvent
from hub.metrics import Metrics
from hub.operations import Revocations, revoke
from hub.plugin_api import Hub
from hub.plugin_catalog import PluginCatalog
from hub.plugin_manager import PluginManager
from hub.presence import RoomPresence
from hub.protocol import CloseCode
from hub.router import Router
from hub.session import Session
from hub.settings import HubSettings
from hub.store import PluginStore, Store, open_store
from hub.types import Identity, PresenceMember

log = logging.getLogger("hub")

BROKER_UNHEALTHY = "no probe made the round trip through the broker's pub/sub within HUB_PROBE_TIMEOUT"


@dataclass(frozen=True, slots=True)
class Readiness:
    """A node's readiness as /readyz reports it: each part None when healthy, else why not."""

    started: bool
    broker: str | None
    store: str | None

    @property
    def ready(self) -> bool:
        return self.started and self.broker is None and self.store is None

    def as_json(self) -> dict[str, bool | str]:
        """``ready``, ``started``, ``broker`` and ``store`` ("ok" or "unavailable"), and ``reason`` when not ready."""
        body: dict[str, bool | str] = {
            "ready": self.ready,
            "started": self.started,
            "broker": "ok" if self.broker is None else "unavailable",
            "store": "ok" if self.store is None else "unavailable",
        }
        reasons = [] if self.started else ["starting up or shutting down"]
        reasons += [f"{part}: {why}" for part, why in (("broker", self.broker), ("store", self.store)) if why]
        if reasons:
            body["reason"] = "; ".join(reasons)
        return body


class Runtime:
    """Everything a node runs: settings, router, broker, store, fan-out, sessions. Private to the hub: a plugin
    sees it only through its own :class:`hub.Hub`."""

    def __init__(self, settings: HubSettings, plugins: PluginCatalog) -> None:
        self.settings = settings
        self.broker: Broker = open_broker(
            settings.resolved_broker_url(),
            sweep_interval=settings.sweep_interval,
            presence_ttl=settings.presence_ttl,
            probe_interval=settings.probe_interval,
            probe_timeout=settings.probe_timeout,
            reorder_timeout=settings.reorder_timeout,
            prefix=settings.redis_prefix,
            node_ttl=settings.node_ttl,
        )
        self.store: Store = open_store(
            settings.resolved_store_url(), prefix=settings.redis_prefix, check_timeout=settings.probe_timeout
        )
        self.node_id: str = self.broker.node_id
        """This node's id: the broker's (the Redis pub/sub marks this node's events with it)."""
        self.metrics = Metrics()
        self.fanout = Fanout(self.broker.pubsub, self.metrics)
        self.room_presence = RoomPresence(
            self.broker.presence,
            lambda channel, event_type, data: self.publish(channel, event_type, data, ephemeral=True),
            limit=settings.presence_list_limit,
            interval=settings.presence_count_interval,
        )
        self.heartbeat = HeartbeatMonitor(settings.heartbeat_interval, settings.heartbeat_timeout)
        self.authenticator = Authenticator.from_settings(settings)
        self.sessions: dict[str, Session] = {}
        self.revocations = Revocations()  # subscriptions the server is ending (revoke)
        # path prefix -> the largest message a plugin's own WebSocket route there accepts (else max_frame_bytes)
        self.websocket_frame_limits: dict[str, int] = {}
        self._plugin_stores: dict[str, PluginStore] = {}
        self.started = False
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop the hub runs on, once started
        self.metrics.gauge("hub_connections", "Open WebSocket connections.", lambda: len(self.sessions))
        self.metrics.gauge(
            "hub_channels", "Channels with a subscriber on this node.", lambda: self.fanout.channel_count
        )
        self.metrics.gauge(
            "hub_send_queue_frames",
            "Frames waiting in send queues, all sessions.",
            lambda: sum(session.queued_frames for session in self.sessions.values()),
        )
        self.metrics.counter(
            "hub_revoked_subscriptions_total",
            "Subscriptions this node ended because access was withdrawn (Hub.revoke).",
            lambda: self.revocations.count,
        )
        # read from outside by benchmarks/soak.py: back to its idle count once every client has gone, or a leak
        self.metrics.gauge(
            "hub_tasks",
            "asyncio tasks of this process's event loop (the scrape's own included).",
            lambda: len(asyncio.all_tasks(self.loop)) if self.loop is not None else 0,
        )
        # Last: a plugin's constructor may use its Hub (settings, metrics, store) at once.
        self.plugins = PluginManager(plugins, self)
        self.admin = Admin(self) if settings.admin else None
        """The core's admin channel (hub/admin.py, ``HUB_ADMIN``), routed beside the plugins' channels."""
        core = [(ADMIN_OWNER, self.admin.channel)] if self.admin is not None else []
        self.router = Router([*self.plugins.channels(), *core], max_channel_length=settings.max_channel_length)
        self.plugin_apis = {
            namespace: self.plugins.apis[self.router.owner(namespace)]
            for namespace in self.router.channels
            if self.admin is None or namespace != ADMIN_NAMESPACE
        }
        if self.admin is not None:
            self.plugin_apis[ADMIN_NAMESPACE] = Hub(self, ADMIN_OWNER)
        """namespace -> the :class:`hub.Hub` of the plugin that owns it (``ctx.hub``)."""
        self.control = Control(self)
        """The cluster-wide operator surface (hub/control.py): the server API and the admin page use it."""

    def add_session(self, session: Session) -> None:
        """A connection was accepted: count it, and watch its heartbeat."""
        self.sessions[session.client_id] = session
        self.metrics.connections_opened += 1
        self.heartbeat.watch(session)

    def remove_session(self, session: Session) -> None:
        """A connection ended: stop watching it, and count the server's close code if it closed it."""
        self.heartbeat.forget(session)
        self.sessions.pop(session.client_id, None)
        if session.close_code is not None:
            self.metrics.closes[session.close_code] += 1

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.store.start()
        await self.broker.start(self.fanout.deliver, self._presence_expired, self.fanout.stream_reset)
        self.heartbeat.start()
        await self.authenticator.start()  # fetches the JWKS, if one is configured (a failure does not stop us)
        await self.plugins.startup()
        await self.control.start()  # in the cluster's node list, and answering its surveys
        if self.admin is not None:
            self.admin.start()
        await self.metrics.start()
        self.started = True
        log.info("hub started: plugins %s", ", ".join(self.plugins.names) or "none")

    async def stop(self) -> None:
        self.started = False
        if self.admin is not None:
            await self.admin.stop()
        await self.control.stop()  # out of the node list first: no survey waits for a node that is leaving
        # Under hub serve and hub.testing every session has closed by now (hub.server's HubWebSocketProtocol hands
        # each one SHUTDOWN_MESSAGE first); under another ASGI server, this is where they get their 1001.
        for session in tuple(self.sessions.values()):
            session.close(CloseCode.GOING_AWAY, SHUTDOWN_REASON, flush=True)
        closing = [session.wait_closed() for session in self.sessions.values()]
        if closing:
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=self.settings.shutdown_timeout)
        await self.revocations.drain(timeout=2.0)
        await self.plugins.shutdown()
        await self.metrics.stop()
        await self.room_presence.stop()
        await self.heartbeat.stop()
        await self.authenticator.stop()
        await self.broker.close()
        await self.store.close()

    async def _presence_expired(self, channel: str, member: PresenceMember) -> None:
        """A member's node died; announce its departure as its own node would have."""
        self.router.resolve(channel)  # a channel no plugin here owns (any more) is refused before anything is sent
        await self.room_presence.expired(channel, member)

    @property
    def ready(self) -> bool:
        """Started, the broker healthy and the store usable as last seen (:meth:`readiness` looks again)."""
        return self.started and self.broker.healthy and self.store.problem is None

    async def readiness(self) -> Readiness:
        """What /readyz answers: the store checked now (a few stats on SQLite, a PING on Redis), the broker's
        health as its probes last found it."""
        broker = None if self.broker.healthy else BROKER_UNHEALTHY
        store = await self.store.check() if self.started else self.store.problem
        return Readiness(started=self.started, broker=broker, store=store)

    def store_for(self, namespace: str) -> PluginStore:
        store = self._plugin_stores.get(namespace)
        if store is None:
            store = self._plugin_stores[namespace] = PluginStore(self.store, namespace)
        return store

    def lease(self, name: str, ttl: float) -> Lease:
        """A cluster-wide lease named ``name`` (one holder at a time, expiring ``ttl`` seconds after its last
        acquire), for work one node should do for the whole cluster. See :class:`hub.Lease`."""
        return Lease(self.broker.coordination, name, ttl, node_id=self.node_id)

    async def interest(self, channel: str) -> int:
        """How many nodes (this one included) have at least one subscriber of ``channel`` right now."""
        return await self.broker.pubsub.interest(channel)

    async def listen(self, channel: str, on_event: OnEvent) -> Listener:
        """Follow ``channel`` from inside the hub: ``on_event(channel, frame)`` gets every event of it on this
        node, from every node, as a subscribed client would (its ``ev`` frame). Close the listener to stop.
        Returns once the subscription is confirmed (with Redis: no event published afterwards is missed)."""
        self.router.resolve(channel)  # a channel no plugin owns, or a bad name, is an error here too
        listener = Listener(self.fanout, channel, on_event)
        await self.fanout.add(channel, listener)
        return listener

    def limit_websocket_frames(self, path_prefix: str, max_bytes: int) -> None:
        """Let a plugin's own WebSocket route(s) under ``path_prefix`` take messages of up to ``max_bytes``
        instead of ``max_frame_bytes`` (docedit's ``/yjs/``: a stock Yjs client cannot split a big update).
        Call it from ``hub_http_routes``. Applies under ``hub serve`` (the hub's uvicorn protocol); /ws keeps
        ``max_frame_bytes``."""
        if not path_prefix.startswith("/") or path_prefix.rstrip("/") == "/ws" or path_prefix == "/":
            raise ValueError(f"a frame limit needs a path prefix of a plugin's route, not {path_prefix!r}")
        if max_bytes < 256:
            raise ValueError("a frame limit is at least 256 bytes")
        self.websocket_frame_limits[path_prefix] = max_bytes

    def websocket_frame_limit(self, path: str) -> int | None:
        """The frame limit a plugin set for ``path`` (the longest matching prefix), or None."""
        found = [prefix for prefix in self.websocket_frame_limits if path.startswith(prefix)]
        return self.websocket_frame_limits[max(found, key=len)] if found else None

    def revoke(
        self,
        channel: str,
        who: Callable[[Identity], bool],
        *,
        code: str = "forbidden",
        msg: str | None = None,
    ) -> int:
        """End the subscriptions of ``channel`` that this node's connections hold for identities ``who``
        selects (``lambda identity: identity.user in removed``), because their access was withdrawn.

        Each such client gets ``{"op":"unsub","ch":channel,"code":code,"msg":msg}`` and no further event of the
        channel; the others see ``<namespace>.left`` on a presence channel. A ``sub`` still being prepared is
        answered with an ``err`` (``code``, ``msg``) instead. Synchronous, so it may run in a listener callback:
        when it returns, nothing more of the channel reaches those clients. It acts on this node only: with
        several nodes, call it on each (a plugin follows the change that withdraws access with
        :meth:`listen`, which runs on every node). Returns how many subscriptions it ended.
        """
        return revoke(self, channel, who, code, msg or f"Access to {channel!r} was withdrawn.")

    async def verify_token(self, token: str | None) -> Identity:
        """The identity a token stands for, as the socket checks it (a new guest for None when guests are
        allowed); :class:`hub.HubError` ``unauthorized`` otherwise."""
        if token is None:
            if self.settings.anonymous:
                return anonymous_identity()
            raise HubError("unauthorized", "Send a token; guests are not allowed on this hub.")
        try:
            identity = await self.authenticator.verify_async(token)
        except AuthError as exc:
            raise HubError("unauthorized", str(exc)) from None
        if identity.anonymous and not self.settings.anonymous:
            raise HubError("unauthorized", "Guests are not allowed on this hub; sign in.")
        return identity

    async def presence(self, channel: str) -> list[PresenceMember]:
        """Who is in ``channel`` (a channel with presence), on every node."""
        return await self.broker.presence.members(channel)

    def authenticate(self, authorization: str | None) -> Identity:
        """The caller of an HTTP route from its ``Authorization`` header (:func:`hub.http_auth.request_identity`)."""
        return request_identity(self.settings, self.authenticator, authorization)

    def authenticate_publisher(self, authorization: str | None, api_key: str | None, *, scope: str) -> Identity:
        """The caller of a server-to-server route (:func:`hub.http_auth.request_publisher`)."""
        return request_publisher(self.settings, self.authenticator, authorization, api_key, scope=scope)

    def authorize_read(self, identity: Identity, channel: str) -> str:
        """May ``identity`` read ``channel``? The room, or HTTP 404/403 (:func:`hub.http_auth.check_subscribe`)."""
        return check_subscribe(self.router, self.plugins, identity, channel)

    def local_subscribers(self, channel: str) -> int:
        """How many connections (and listeners) of this node follow ``channel``."""
        return self.fanout.subscriber_count(channel)

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
        """Publish one event to every subscriber of ``channel`` on every node; returns its offset, if any.
        ``mid``: mark this mid done with the event (the core's dedup, see Context.publish). ``record``: (a plugin's
        namespace, key): write the event's data JSON there in the store first, or in the same step (one Redis
        script when store and broker share one Redis; see PubSub.publish)."""
        if record is not None and ephemeral:
            raise ValueError("an ephemeral event is not stored: store_key needs ephemeral=False")
        spec, _room = self.router.resolve(channel)
        check_event(spec, event_type, data)
        history = None if ephemeral else spec.history_policy(self.settings.history_ttl)
        self.metrics.events_published += 1
        self.metrics.events_out[event_type] += 1
        if mid is not None and not mid[0].startswith(channel + "\x00"):
            await self.broker.coordination.confirm_mid(*mid)  # another channel's mid: its own step, before the event
            mid = None
        stored = StoreRecord(self.store, *record) if record is not None else None
        started = time.perf_counter()
        offset = await self.broker.pubsub.publish(
            channel, event_type, data.model_dump_json(), history, mid=mid, record=stored
        )
        self.metrics.broker_round_trip.observe(time.perf_counter() - started)
        return offset
