"""``ClientCore``: the state a :class:`hub.client.Client` holds, its listeners, and its requests out.

The options and state of one client (``__init__``), its read-only properties, the ``on``/``off`` listeners and state
changes, and the plumbing every request goes through: a frame with a fresh id onto the current socket's writer,
settled by its reply. hub/client/channels.py builds the subscriptions on it, hub/client/client.py the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import random as random_module
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub.client.backoff import Backoff
from hub.client.dispatcher import Callback, Dispatcher
from hub.client.errors import ClientError
from hub.client.requests import Outbox, Reply, Requests
from hub.client.socket import SocketOptions, socket_url
from hub.client.subscription import Owner, Subscription, Walk
from hub.client.types import Hello, State, StateChange, User

TokenSource: TypeAlias = str | Callable[[], str | Awaitable[str | None] | None] | None
"""A JWT, or a function (plain or async) called before every connection attempt; None: a guest."""


class ClientCore:
    """The state, listeners and request plumbing of :class:`hub.client.Client` (its base class)."""

    if TYPE_CHECKING:  # defined by hub/client/channels.py's Channels, the layer above

        async def _unsubscribe(self, sub: Subscription) -> None: ...

        def _presence_list_limit(self) -> float: ...

        async def _walk_presence(self, channel: str) -> Walk: ...

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        token: TokenSource = None,
        resume: str | None = None,
        min_delay: float = 0.25,
        max_delay: float = 10.0,
        connect_timeout: float = 10.0,
        heartbeat_timeout: float | None = None,
        ping_interval: float = 5.0,
        request_timeout: float = 10.0,
        offline_queue: float = 5.0,
        offline_queue_max: int = 100,
        max_events: int = 1000,
        max_in_flight: int = 1000,
        max_message_bytes: int = 16 * 1024 * 1024,
        close_timeout: float = 2.0,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("a Client needs at least one URL")
        self._urls = tuple(socket_url(each) for each in urls)
        self._url_index = 0
        for name, value in (("connect_timeout", connect_timeout), ("request_timeout", request_timeout),
                            ("close_timeout", close_timeout)):  # fmt: skip
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if heartbeat_timeout is not None and not heartbeat_timeout > 0:
            raise ValueError(f"heartbeat_timeout must be positive (or None), got {heartbeat_timeout}")
        self._token = token
        self._guest_token = resume
        self._using_guest_token = False
        self._backoff = Backoff(min_delay, max_delay, random)
        self._socket_options = SocketOptions(connect_timeout, close_timeout, max_message_bytes)
        self._heartbeat_timeout = heartbeat_timeout
        self._ping_interval = ping_interval
        self._request_timeout = request_timeout
        self._requests = Requests(max_in_flight)
        self._outbox = Outbox(offline_queue, offline_queue_max)
        self._dispatcher = Dispatcher(max_events)
        self._listeners: dict[str, list[Callback]] = {}
        self._subs: dict[str, Subscription] = {}
        self._owner = Owner(self._unsubscribe, self._presence_list_limit, self._walk_presence)
        self._state: State = "closed"
        self._stopped = True
        self._ws: ClientConnection | None = None
        self._live = False  # from the current socket's hello until it is lost: requests may be sent
        self._hello: Hello | None = None
        self._me: User | None = None
        self._rtt: float | None = None
        self._attempt = 0
        self._runner: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._ending: set[asyncio.Task[None]] = set()  # the tasks of a dropped socket, until they are gone
        self._outgoing: asyncio.Queue[str] | None = None
        self._open_waiters: list[asyncio.Future[None]] = []
        self._ended = asyncio.Event()
        self._final: StateChange | None = None

    # ---- state ------------------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def me(self) -> User | None:
        """Who this connection is (from ``hello``, updated by ``auth``); None before the first ``hello``."""
        return self._me

    @property
    def hello(self) -> Hello | None:
        """The current (or last) connection's ``hello``."""
        return self._hello

    @property
    def rtt(self) -> float | None:
        """The last round trip of a ``ping`` op to its ``pong``, in seconds."""
        return self._rtt

    @property
    def url(self) -> str:
        """The URL of the current connection, or of the next attempt."""
        return self._urls[self._url_index]

    @property
    def urls(self) -> tuple[str, ...]:
        return self._urls

    @property
    def channels(self) -> list[str]:
        """The channels this client follows (and resubscribes after a reconnect)."""
        return list(self._subs)

    @property
    def guest_token(self) -> str | None:
        """The hub's resume token for this guest (``hello.resume``): pass it as ``resume=`` to a later Client to
        come back as the same guest."""
        return self._guest_token

    def on(self, event: str, callback: Callback) -> Callable[[], None]:
        """Listen to ``connecting``, ``open``, ``reconnecting``, ``closed`` and ``state`` (a :class:`StateChange`),
        ``rtt`` (seconds), ``auth`` (the new :class:`User`), ``error`` (a :class:`ClientError` that answers no
        request), ``event`` (an :class:`Event` on a channel this client does not follow) and ``revoked`` (the
        :class:`ClientError` of a subscription the hub ended). Returns a function that removes the listener."""
        self._listeners.setdefault(event, []).append(callback)
        return lambda: self.off(event, callback)

    def off(self, event: str, callback: Callback) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.get(event, []).remove(callback)

    def _emit(self, event: str, detail: Any) -> None:
        for callback in list(self._listeners.get(event, ())):
            self._dispatcher.post(callback, detail)

    def _set_state(self, state: State, **detail: Any) -> None:
        prev = self._state
        if prev == state and state != "reconnecting":
            return
        self._state = state
        change = StateChange(state=state, prev=prev, **detail)
        self._emit(state, change)
        self._emit("state", change)
        if state == "closed":
            self._final = change
            self._ended.set()

    def _settle_open_waiters(self, error: ClientError | None) -> None:
        waiters, self._open_waiters = self._open_waiters, []
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)

    # ---- frames out -------------------------------------------------------------------------------------

    async def _write_forever(self, ws: ClientConnection, queue: asyncio.Queue[str]) -> None:
        """The current socket's writer: frames go out in the order they were made."""
        with contextlib.suppress(ConnectionClosed):  # the reader sees the close and reports it
            while True:
                await ws.send(await queue.get())

    def _write(self, encoded: bytes) -> None:
        if self._outgoing is not None:
            self._outgoing.put_nowait(encoded.decode())

    def _request(self, frame: dict[str, Any], timeout: float | None, settle: Callable[[Reply], None]) -> None:
        """Send a request with a fresh id now; ``settle`` gets its reply or error, in the reader."""
        if not self._live:
            raise ClientError("disconnected", "Not connected to the hub.")
        request_id = self._requests.open(timeout or self._request_timeout, settle)
        encoded = orjson.dumps({**frame, "id": request_id})
        limit = self._hello.limits.get("max_frame_bytes") if self._hello is not None else None
        if limit is not None and len(encoded) > limit:
            self._requests.discard(request_id)
            raise ClientError("frame_too_large", f"The frame has {len(encoded)} bytes; the hub takes {limit} at most.")
        self._write(encoded)

    async def _call(self, frame: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a request; the reply frame, or its ``err`` (or the client's own error) raised."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def settle(reply: Reply) -> None:
            if future.done():
                return
            if isinstance(reply, ClientError):
                future.set_exception(reply)
            elif reply.get("op") == "err":
                future.set_exception(ClientError.from_frame(reply))
            else:
                future.set_result(reply)

        self._request(frame, timeout, settle)
        return await future
