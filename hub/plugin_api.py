"""Hub: what one plugin may do with the node it runs in — the whole plugin API, and nothing of the runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar

from pydantic import BaseModel
from pydantic_settings import BaseSettings

from hub.lease import Lease
from hub.listener import Listener, OnEvent
from hub.metrics import Histogram
from hub.settings_file import SettingsError, plugin_settings
from hub.store import PluginStore
from hub.types import Identity, PresenceMember

if TYPE_CHECKING:
    from hub.node import Node

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class PluginSetupError(Exception):
    """A plugin cannot be set up (its settings do not validate): the hub stops before it serves."""


class HubNotRunning(RuntimeError):
    """A plugin object built only to describe its channels (``hub schema``, ``hub plugins``) was asked to act."""


class PluginMetrics:
    """A plugin's metrics on this node's ``/metrics``. Counters and gauges are read when scraped (the plugin keeps
    plain numbers); a histogram is observed as things happen. Names are Prometheus names, by convention
    ``hub_<plugin>_<what>``; each may be registered once per hub."""

    __slots__ = ("_runtime",)

    def __init__(self, runtime: Node | None) -> None:
        self._runtime = runtime

    def counter(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A count that only grows while the process runs (``read()`` when scraped); its name ends in ``_total``."""
        _running(self._runtime).metrics.counter(name, help_text, read)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A value that goes up and down (open documents), ``read()`` when scraped."""
        _running(self._runtime).metrics.gauge(name, help_text, read)

    def histogram(self, name: str, help_text: str, buckets: tuple[float, ...]) -> Histogram:
        """A distribution (a feed's tick latency in seconds): ``.observe(value)`` on the returned histogram;
        ``buckets`` are the upper bounds, increasing (``+Inf`` is added)."""
        return _running(self._runtime).metrics.histogram(name, help_text, buckets)


def _running(runtime: Node | None) -> Node:
    if runtime is None:
        raise HubNotRunning(
            "this plugin object was built only to describe its channels (hub schema, hub plugins); it runs in no hub"
        )
    return runtime


class Hub:
    """The node, as one plugin sees it: given to the plugin's factory (``MyPlugin(hub)``) and to its lifecycle
    hooks, and on every :class:`hub.Context` as ``ctx.hub``. One per plugin per running hub.

    Publishing, the plugin's own store, leases, interest, listeners, revocation, metrics, the frame limit of its
    own WebSocket routes, and the identity checks of its HTTP routes. Everything else about the node is private.
    """

    __slots__ = ("_runtime", "metrics", "name")

    def __init__(self, runtime: Node | None, name: str) -> None:
        self._runtime = runtime
        self.name = name
        """The plugin's name (its entry point's, or the key it was registered under)."""
        self.metrics = PluginMetrics(runtime)

    @property
    def _rt(self) -> Node:
        return _running(self._runtime)

    # ---- who and where ---------------------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        """This node's id: the same in every event it publishes and in logs; unique in the cluster."""
        return self._rt.node_id

    def settings(self, model: type[SettingsT]) -> SettingsT:
        """The plugin's own settings: ``model`` (a pydantic-settings class, e.g. with ``env_prefix="HUB_CHAT_"``)
        read and validated now, from ``hub serve``'s flags over its environment variables over its table of the
        config file (``[chat]``) over its defaults. Call it from the plugin's constructor, never at import. A
        value that does not validate stops the hub at start-up with one line naming the plugin and the
        variable (or the file's line)."""
        try:
            return plugin_settings(model, self.name)
        except SettingsError as exc:
            raise PluginSetupError(f"plugin {self.name!r}: its settings are not valid: {exc}") from None

    # ---- publishing and following ----------------------------------------------------------------------------

    async def publish(
        self, channel: str, event_type: str, data: BaseModel, *, ephemeral: bool = False, store_key: str | None = None
    ) -> int | None:
        """Publish one event to every subscriber of ``channel`` on every node (from a background task, an HTTP
        route, a listener); returns its offset when the channel keeps history. ``event_type`` must be declared on
        the channel with ``data``'s model. ``ephemeral`` events skip history. ``store_key``: also write the event's
        data to the plugin's :attr:`store` under this key, no later than the event goes out (one Redis round trip
        when store and broker share one Redis), as :meth:`hub.Context.publish` does."""
        record = (self.name, store_key) if store_key is not None else None
        return await self._rt.publish(channel, event_type, data, ephemeral=ephemeral, record=record)

    async def listen(self, channel: str, on_event: OnEvent) -> Listener:
        """Follow ``channel`` from inside the hub: ``on_event(channel, frame)`` gets every event of it on this
        node, from every node, as a subscribed client would (its ``ev`` frame). Close the listener to stop.
        Returns once the subscription is confirmed (with Redis: no event published afterwards is missed)."""
        return await self._rt.listen(channel, on_event)

    async def interest(self, channel: str) -> int:
        """How many nodes (this one included) have at least one subscriber of ``channel`` right now."""
        return await self._rt.interest(channel)

    def local_subscribers(self, channel: str) -> int:
        """How many connections (and listeners) of this node follow ``channel``."""
        return self._rt.local_subscribers(channel)

    async def presence(self, channel: str) -> list[PresenceMember]:
        """Who is in ``channel`` (a channel with presence), on every node."""
        return await self._rt.presence(channel)

    def revoke(
        self, channel: str, who: Callable[[Identity], bool], *, code: str = "forbidden", msg: str | None = None
    ) -> int:
        """End the subscriptions of ``channel`` that this node's connections hold for identities ``who`` selects
        (``lambda identity: identity.user in removed``), because their access was withdrawn.

        Each such client gets ``{"op":"unsub","ch":channel,"code":code,"msg":msg}`` and no further event of the
        channel; the others see ``<namespace>.left`` on a presence channel. A ``sub`` still being prepared is
        answered with an ``err`` instead. Synchronous, so it may run in a listener callback: when it returns,
        nothing more of the channel reaches those clients. It acts on this node only: with several nodes, call
        it on each (follow the change that withdraws access with :meth:`listen`, which runs on every node).
        Returns how many subscriptions it ended."""
        return self._rt.revoke(channel, who, code=code, msg=msg)

    # ---- state ----------------------------------------------------------------------------------------------

    @property
    def store(self) -> PluginStore:
        """The plugin's own slice of the node's durable store (SQLite or Redis), keyed under its name."""
        return self._rt.store_for(self.name)  # the runtime keeps one per namespace

    def lease(self, name: str, ttl: float) -> Lease:
        """A cluster-wide lease named ``name`` (one holder at a time, expiring ``ttl`` seconds after its last
        acquire), for work one node should do for the whole cluster. See :class:`hub.Lease`. Leases are shared
        by every plugin: start ``name`` with the plugin's name."""
        return self._rt.lease(name, ttl)

    # ---- the plugin's own routes ----------------------------------------------------------------------------

    def limit_websocket_frames(self, path_prefix: str, max_bytes: int) -> None:
        """Let the plugin's own WebSocket route(s) under ``path_prefix`` take messages of up to ``max_bytes``
        instead of ``HUB_MAX_FRAME_BYTES`` (docedit's ``/yjs/``: a stock Yjs client cannot split a big update).
        Call it from ``hub_http_routes``. /ws keeps its own limit."""
        self._rt.limit_websocket_frames(path_prefix, max_bytes)

    def authenticate(self, authorization: str | None) -> Identity:
        """The caller of an HTTP route, from its ``Authorization: Bearer <jwt>`` header, with the socket's rules
        (a user's token, a guest's resume token, or a new guest when guests are allowed); HTTP 401 otherwise."""
        return self._rt.authenticate(authorization)

    async def verify_token(self, token: str | None) -> Identity:
        """The identity a token stands for (a guest when ``token`` is None and guests are allowed), as the
        socket checks it (a key set fetched once more for an unknown key id); raises ``hub.HubError``
        ``unauthorized`` otherwise. For a plugin's own WebSocket route, which has no ``Authorization`` header."""
        return await self._rt.verify_token(token)

    def authenticate_publisher(
        self, authorization: str | None, api_key: str | None, *, scope: str = "publish"
    ) -> Identity:
        """The caller of a server-to-server route: an API key (``X-API-Key``, or ``Authorization: Bearer <key>``)
        or a JWT that carries ``scope``. HTTP 401 without valid credentials, 403 for a token without the scope."""
        return self._rt.authenticate_publisher(authorization, api_key, scope=scope)

    def authorize_read(self, identity: Identity, channel: str) -> str:
        """May ``identity`` read ``channel``, as a ``sub`` would be allowed by the channel's policy and every
        ``hub_authorize`` hook? Returns the room; HTTP 404 for a bad channel name, 403 when refused."""
        return self._rt.authorize_read(identity, channel)

    def origin_allowed(self, headers: dict[bytes, bytes]) -> bool:
        """Whether a WebSocket handshake with these headers (the ASGI scope's, as a dict) comes from an allowed
        origin (the hub's own, or one of ``HUB_ALLOWED_ORIGINS``), as for /ws: check it on a plugin's own
        WebSocket route."""
        from hub.auth import origin_allowed

        return origin_allowed(headers, self._rt.settings.allowed_origins)

    @property
    def close_timeout(self) -> float:
        """How long to wait for a peer's close handshake (``HUB_CLOSE_TIMEOUT``), for a plugin's own sockets."""
        return self._rt.settings.close_timeout


class Plugin:
    """The optional base of a plugin class: the hub calls ``MyPlugin(hub)`` once for each hub it runs, and
    the object keeps its :class:`Hub` as ``self.hub``. Read settings in ``__init__`` (with :meth:`Hub.settings`),
    declare channels there, start background work in ``hub_startup`` and stop it in ``hub_shutdown``.

    ``static``: the folder of the plugin's package the hub serves at ``/plugins/<name>/`` (a ``panel.js`` there
    is the plugin's panel in the demo app); "static" by default, None for none, or an absolute path.
    """

    static: ClassVar[str | None] = "static"

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
