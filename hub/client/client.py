"""``Client``: an asyncio client of the hub's wire protocol for backends and bots, with hub.js's semantics.

One ``Client`` holds one WebSocket at a time and carries every channel it follows. It answers the hub's pings,
detects a dead connection by the heartbeat timeout, reconnects with exponential backoff and full jitter (to the
next of its URLs), comes back as the same guest (``hello.resume``), resubscribes every channel with ``since``,
and hands a subscriber the fresh snapshot (``info.reset``) when recovery fails. Publishes made while the
connection is down wait in a short, bounded queue; one that carries a ``mid`` and was in flight when the socket
dropped is sent again after the reconnect (the hub answers a repeat ``{"duplicate": true}``).

Three tasks per client: the runner (connect, read, reconnect), the writer of the current socket (frames go out in
the order they were made), and the dispatcher (the app's callbacks, in order; hub/client/dispatcher.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random as random_module
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

import orjson
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub.client.backoff import Backoff
from hub.client.dispatcher import Callback, Dispatcher, cancel, logger
from hub.client.errors import ClientError, ConnectionLost
from hub.client.requests import Outbox, Queued, Reply, Requests
from hub.client.socket import Loss, Opened, SocketOptions, abort, closed_loss, decode, open_socket, socket_url
from hub.client.subscription import (
    ErrorHandler,
    EventHandler,
    Handlers,
    Owner,
    PresenceHandler,
    SnapshotHandler,
    SubscribedHandler,
    Subscription,
    Walk,
)
from hub.client.types import Event, Hello, Member, PresencePage, State, StateChange, User, members_of
from hub.protocol import CloseCode, close_reason

TokenSource: TypeAlias = str | Callable[[], str | Awaitable[str | None] | None] | None
"""A JWT, or a function (plain or async) called before every connection attempt; None: a guest."""

AUTH_CLOSE_CODES = frozenset({CloseCode.AUTH_FAILED, CloseCode.AUTH_TIMEOUT, CloseCode.TOKEN_EXPIRED})
"""Close codes after which reconnecting with the same credentials cannot help (docs/protocol.md §13)."""

ABANDON_CODE = 4000  # the close code this client sends when it drops a socket itself (its handlers fell behind)
MAX_PRESENCE_PAGES = 100  # a walk of a small room's members takes one or two pages; never loop on a bad cursor


class Client:
    """An asyncio client of one hub (or of several nodes of one hub: ``url`` may list them).

    ::

        async with Client("ws://127.0.0.1:8000/ws", token=jwt) as client:
            client.subscribe("chat:lobby", events={"chat.posted": lambda event: print(event.data["text"])})
            await client.publish("chat:lobby", "chat.send", {"text": "hello"})

    Every time is in seconds. docs/client.md ("Python client") documents every option, method and event.
    """

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

    # ---- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> Client:
        """Start connecting, and keep reconnecting until ``close()``. Call it from a coroutine."""
        if not self._stopped:
            return self
        self._stopped = False
        self._attempt = 0
        self._ended.clear()
        self._final = None
        self._dispatcher.start()
        self._set_state("connecting", url=self.url)
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="hub.client runner")
        return self

    async def wait_open(self) -> Client:
        """Until the state is ``open`` (at once if it is); raises ``closed`` if the client closes first."""
        if self._state == "open":
            return self
        if self._stopped:
            raise ClientError("closed", "The client is closed; call start() first.")
        waiter = asyncio.get_running_loop().create_future()
        self._open_waiters.append(waiter)
        try:
            await waiter
        finally:
            with contextlib.suppress(ValueError):
                self._open_waiters.remove(waiter)
        return self

    async def wait_closed(self) -> StateChange:
        """Until the client is closed for good (``close()``, or the hub refused the credentials); returns why."""
        await self._ended.wait()
        assert self._final is not None
        return self._final

    async def close(self, reason: str = "closed by the client") -> None:
        """Close for good: no reconnect. Requests in flight fail with ``disconnected``, queued publishes with
        ``closed``; callbacks already queued still run, for at most ``close_timeout`` seconds (then they are cancelled).
        Subscriptions are kept, and a later ``start()`` resubscribes them with ``since``."""
        running = not self._stopped
        self._stopped = True
        runner, self._runner = self._runner, None
        await cancel(runner)
        ws = self._ws
        self._drop_socket(f"The connection was closed ({reason}).")
        if ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close(1000, close_reason(reason))
        self._outbox.fail_all(ClientError("closed", "The client was closed before this publish could be sent."))
        self._settle_open_waiters(ClientError("closed", "The client was closed."))
        if self._ending:
            await asyncio.wait(list(self._ending))
        if running:
            self._set_state("closed", code=1000, reason=reason, cause="client")
        await self._dispatcher.drain(self._socket_options.close_timeout)

    async def __aenter__(self) -> Client:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _settle_open_waiters(self, error: ClientError | None) -> None:
        waiters, self._open_waiters = self._open_waiters, []
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)

    # ---- connecting -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._connect_forever()
        except Exception as exc:
            # The runner's task boundary: a bug here must not leave the client silently dead.
            logger.exception("hub.client: the connection loop failed")
            self._drop_socket("The client failed.")
            self._give_up(Loss(None, f"The client failed: {exc!r}", "error", self.url))

    async def _connect_forever(self) -> None:
        while True:
            await self._dispatcher.wait_for_room()  # an app that is behind gets no new stream of events yet
            loss = await self._connect_and_serve()
            if self._gives_up(loss):
                self._give_up(loss)
                return
            self._attempt += 1
            delay = self._backoff.delay(self._attempt)
            self._url_index = (self._url_index + 1) % len(self._urls)  # fail over: the next attempt goes elsewhere
            self._set_state("reconnecting", code=loss.code, reason=loss.reason, cause=loss.cause,
                            attempt=self._attempt, delay=delay, url=loss.url)  # fmt: skip
            await asyncio.sleep(delay)

    async def _connect_and_serve(self) -> Loss:
        url = self.url
        try:
            token = await self._resolve_token()
        except Exception as exc:
            # The app's token function: whatever it raises is reported, and retried with backoff.
            self._emit("error", ClientError("token", f"Could not get a token: {exc}"))
            return Loss(None, "Could not get a token.", "token", url)
        opened = await open_socket(url, token, self._socket_options)
        if isinstance(opened, Loss):
            return opened
        self._on_hello(opened)
        loss = await self._serve(opened.ws, url)
        self._drop_socket("The connection to the hub was lost before the reply arrived.")
        if loss.cause == "overflow":
            with contextlib.suppress(ConnectionClosed, OSError):
                await opened.ws.close(ABANDON_CODE, close_reason(loss.reason))
        elif loss.cause == "heartbeat":
            abort(opened.ws)
        return loss

    async def _resolve_token(self) -> str | None:
        option = self._token
        token: Any = option() if callable(option) else option
        if inspect.isawaitable(token):
            token = await token
        if token is not None and not isinstance(token, str):
            raise TypeError(f"the token function returned {type(token).__name__}, not a string or None")
        # Without a token of its own, a guest comes back as the same guest: the hub's resume token from `hello`.
        self._using_guest_token = not token and bool(self._guest_token)
        return token or self._guest_token

    def _gives_up(self, loss: Loss) -> bool:
        if loss.cause == "error":
            return True  # the URL cannot be used at all
        if loss.code not in AUTH_CLOSE_CODES:
            return False
        if self._using_guest_token:
            self._guest_token = None  # refused (expired, a new secret, guests off): come back as a new guest
            return False
        # the same token would be refused again; a token function may get a fresh one (not for 4002: no token)
        return not callable(self._token) or loss.code == CloseCode.AUTH_TIMEOUT

    def _give_up(self, loss: Loss) -> None:
        self._stopped = True
        self._runner = None
        why = f"The hub connection stopped: {loss.reason or loss.code}"
        self._outbox.fail_all(ClientError("closed", why))
        self._settle_open_waiters(ClientError("closed", why))
        self._set_state("closed", code=loss.code, reason=loss.reason, cause=loss.cause, url=loss.url)

    def _on_hello(self, opened: Opened) -> None:
        data = opened.hello.get("data")
        resume = data.get("resume") if isinstance(data, Mapping) else None
        self._guest_token = resume if isinstance(resume, str) else None
        self._hello = hello = Hello.parse(data)
        self._me = hello.user
        self._ws = opened.ws
        self._live = True
        self._attempt = 0
        self._outgoing = queue = asyncio.Queue[str]()
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_forever(opened.ws, queue), name="hub.client writer")
        # Resubscribe before anything else is sent, so queued publishes land after the subscriptions.
        for sub in list(self._subs.values()):
            self._send_sub(sub)
        for item in self._outbox.take_all():
            self._send_queued(item)
        self._pinger = loop.create_task(self._ping_forever(), name="hub.client pinger")
        self._set_state("open", me=hello.user, client=hello.client, url=self.url)
        self._settle_open_waiters(None)

    def _drop_socket(self, reason: str) -> None:
        """Forget the current socket: stop its tasks, fail its requests, mark every subscription to be re-sent."""
        self._ws = None
        self._live = False  # `me` and `hello` stay readable while away
        self._outgoing = None
        for task in (self._writer, self._pinger):
            if task is not None:
                task.cancel()
                self._ending.add(task)
                task.add_done_callback(self._ending.discard)
        self._writer = self._pinger = None
        self._requests.fail_all(ConnectionLost(reason))
        for sub in self._subs.values():
            sub._sent = False
            if sub._retry is not None:
                sub._retry.cancel()

    def _heartbeat_limit(self) -> float:
        if self._heartbeat_timeout is not None:
            return self._heartbeat_timeout
        interval = self._hello.heartbeat_interval if self._hello is not None else 25.0
        return 2 * interval + 2.0

    # ---- frames in --------------------------------------------------------------------------------------

    async def _serve(self, ws: ClientConnection, url: str) -> Loss:
        """Read frames until the socket is lost; silence past the heartbeat limit counts as lost."""
        limit = self._heartbeat_limit()
        while True:
            try:
                async with asyncio.timeout(limit):
                    raw = await ws.recv()  # cancelling recv() loses no message (websockets' documentation)
            except TimeoutError:
                return Loss(None, f"Nothing from the hub within {limit:g} s.", "heartbeat", url)
            except ConnectionClosed as exc:
                return closed_loss(exc, url)
            if not self._on_frame(raw):
                behind = self._dispatcher.max_events
                return Loss(None, f"The handlers fell {behind} events behind.", "overflow", url)

    def _on_frame(self, raw: str | bytes) -> bool:
        """Handle one frame; False when an event could not be queued for the app (it is too far behind)."""
        frame = decode(raw)
        if frame is None:
            self._emit("error", ClientError("bad_frame", "The hub sent a frame that is not a JSON object."))
            return True
        op = frame.get("op")
        if op == "ev":
            return self._on_event(frame)
        if op == "ping":
            self._write(b'{"op":"pong"}')
        elif op in ("ok", "err", "pong"):
            if not self._requests.settle(frame) and op == "err":
                self._emit("error", ClientError.from_frame(frame))
        elif op == "unsub":
            self._on_revoked(frame)
        return True  # a newer hub's frame this client does not know: ignored

    def _on_event(self, frame: dict[str, Any]) -> bool:
        event = Event.parse(frame)
        if event is None:
            return True
        sub = self._subs.get(event.channel)
        if sub is not None:
            return sub._on_event(event)
        return self._dispatcher.post_event(self._emit, "event", event)

    def _on_revoked(self, frame: dict[str, Any]) -> None:
        """The hub ended a subscription (access withdrawn, the room deleted): it is over, and not sent again."""
        channel = frame.get("ch")
        sub = self._subs.get(channel) if isinstance(channel, str) else None
        # A `sub` still waiting for its reply is newer than the subscription the notice ends (the hub answers a
        # `sub` it refuses with an `err`, never with an `unsub`).
        if sub is None or sub._awaiting_reply:
            return
        del self._subs[sub.channel]
        if sub._retry is not None:
            sub._retry.cancel()
        code, message = frame.get("code"), frame.get("msg")
        error = ClientError(
            code if isinstance(code, str) else "revoked",
            message if isinstance(message, str) else f"The hub ended the subscription to {sub.channel}.",
            frame=frame,
        )
        error.channel = sub.channel
        sub._on_ended(error)
        self._emit("revoked", error)

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

    # ---- public requests --------------------------------------------------------------------------------

    async def publish(
        self, channel: str, type: str, data: Any = None, *, mid: str | None = None, timeout: float | None = None
    ) -> Any:
        """Publish a message; returns the handler's reply data (None when it returns nothing; ``{"duplicate":
        True}`` for a repeated ``mid``). Raises :class:`ClientError`: the hub's code and sentence (``invalid``,
        ``forbidden``, ``rate_limited``, …), ``disconnected``, ``timeout``, ``closed``, ``offline_queue_full``.

        ``data`` is any JSON value (a pydantic model is dumped to JSON); None sends ``{}``. While the connection is
        down the publish waits up to ``offline_queue`` seconds for it, and is sent after the resubscriptions. With
        a ``mid``, a publish in flight when the socket drops goes back to that queue and is sent again after the
        reconnect (the hub runs it once: a repeat is answered ``{"duplicate": true}``); without one it raises
        ``disconnected`` (it may or may not have happened).
        """
        payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else {} if data is None else data
        frame: dict[str, Any] = {"op": "pub", "ch": channel, "type": type, "data": payload}
        if mid is not None:
            frame["mid"] = mid
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def settle(reply: Reply) -> None:
            if future.done():
                return
            if isinstance(reply, ConnectionLost) and mid is not None and not self._stopped:
                self._outbox.add(item)  # safe to send again: the hub dedups by mid
            elif isinstance(reply, ClientError):
                future.set_exception(reply)
            elif reply.get("op") == "err":
                future.set_exception(ClientError.from_frame(reply))
            else:
                future.set_result(reply.get("data"))

        item = Queued(frame, timeout, settle)
        if self._live:
            self._request(frame, timeout, settle)
        elif self._stopped:
            raise ClientError("closed", "The client is closed; call start() first.")
        else:
            self._outbox.add(item)
        return await future

    def _send_queued(self, item: Queued) -> None:
        try:
            self._request(item.frame, item.timeout, item.settle)
        except ClientError as error:
            item.settle(error)

    async def presence(self, channel: str) -> list[Member]:
        """Who is on a presence channel now (need not be subscribed): everyone in a room of at most
        ``hello.limits["presence_list"]`` members, else the first page of that many (``presence_page``)."""
        return list((await self.presence_page(channel)).members)

    async def presence_page(self, channel: str, *, cursor: str | None = None, limit: int | None = None) -> PresencePage:
        """One page of a presence channel's members, the room's count, and the next page's cursor (None after the
        last). A member present during the whole walk is listed at least once: dedupe by ``client``."""
        frame: dict[str, Any] = {"op": "presence", "ch": channel}
        if cursor is not None:
            frame["cursor"] = cursor
        if limit is not None:
            frame["limit"] = limit
        data = (await self._call(frame)).get("data")
        data = data if isinstance(data, Mapping) else {}
        members = members_of(data.get("presence"))
        count = data.get("count")
        next_cursor = data.get("cursor")
        return PresencePage(
            tuple(members),
            count if isinstance(count, int) and not isinstance(count, bool) else len(members),
            next_cursor if isinstance(next_cursor, str) else None,
        )

    async def presence_count(self, channel: str) -> int:
        """How many members a presence channel has, without the list (need not be subscribed)."""
        data = (await self._call({"op": "presence", "ch": channel, "count_only": True})).get("data")
        count = data.get("count") if isinstance(data, Mapping) else None
        return count if isinstance(count, int) and not isinstance(count, bool) else 0

    async def set_presence(self, channel: str, meta: Any) -> Member | None:
        """Set this connection's presence metadata on a channel it follows (None clears it); the others see the
        member change (``on_presence`` with ``change.type == "updated"``). Resubscribes after a reconnect carry it.
        Before the channel's ``sub`` reply, or while disconnected, it only rides the next ``sub`` (returns None);
        refused metadata raises the hub's error (``invalid`` with ``details``, ``rate_limited``, ``bad_request``
        where the channel takes none). Returns the member as the room now lists it."""
        sub = self._subs.get(channel)
        if sub is None:
            raise ClientError("not_subscribed", f"This client does not follow {channel}; subscribe first.")
        sub.meta = meta
        if not self._live or not sub._sent or sub._awaiting_reply:
            return None
        reply = await self._call({"op": "presence_set", "ch": channel, "meta": meta})
        data = reply.get("data")
        return Member.parse(data.get("member")) if isinstance(data, Mapping) else None

    async def ping(self) -> float:
        """Measure the round trip now (seconds); updates ``rtt`` and fires ``rtt``. Done every ``ping_interval``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._call({"op": "ping"})
        self._rtt = loop.time() - started
        self._emit("rtt", self._rtt)
        return self._rtt

    async def auth(self, token: str) -> User | None:
        """Present a (new) token on the open connection: sign a guest in, or refresh a token before it expires.
        A string token also replaces the one used to reconnect."""
        reply = await self._call({"op": "auth", "token": token})
        data = reply.get("data")
        self._me = User.parse(data.get("user") if isinstance(data, Mapping) else None)
        if not callable(self._token):
            self._token = token
        self._emit("auth", self._me)
        return self._me

    async def _ping_forever(self) -> None:
        while True:
            with contextlib.suppress(ClientError):  # a lost ping is the heartbeat timeout's business
                await self.ping()
            if self._ping_interval <= 0:
                return
            await asyncio.sleep(self._ping_interval)

    # ---- subscriptions ----------------------------------------------------------------------------------

    def subscribe(
        self,
        channel: str,
        *,
        events: Mapping[str, EventHandler] | None = None,
        on_event: EventHandler | None = None,
        on_subscribed: SubscribedHandler | None = None,
        on_snapshot: SnapshotHandler | None = None,
        on_presence: PresenceHandler | None = None,
        on_error: ErrorHandler | None = None,
        since: tuple[str, int] | None = None,
        meta: Any = None,
    ) -> Subscription:
        """Follow a channel: the ``sub`` is sent now if open, else when the connection opens, and again after every
        reconnect with ``since`` (the epoch and the last offset seen), so a recoverable channel delivers exactly
        the missed events, or says it could not (``info.reset``) and hands ``on_snapshot`` a fresh snapshot.
        ``since``: resume from a position known from before (``(epoch, offset)``). ``meta``: this connection's
        presence metadata on the channel (channels whose plugin declares a metadata model), sent with the ``sub``
        and every resubscribe; change it with :meth:`set_presence`.

        One subscription per channel per client: raises ``already_subscribed`` while one exists.
        """
        if channel in self._subs:
            raise ClientError("already_subscribed", f"This client already follows {channel}; unsubscribe first.")
        handlers = Handlers(dict(events or {}), on_event, on_subscribed, on_snapshot, on_presence, on_error)
        sub = Subscription(channel, handlers, self._dispatcher, self._owner, since, meta)
        self._subs[channel] = sub
        if self._live:
            self._send_sub(sub)
        return sub

    def _send_sub(self, sub: Subscription) -> None:
        frame: dict[str, Any] = {"op": "sub", "ch": sub.channel}
        if sub.meta is not None:
            frame["meta"] = sub.meta
        since = sub._since()
        if since is not None:
            frame["since"] = since
        sub._sent = True
        sub._awaiting_reply = True

        def settle(reply: Reply) -> None:
            if self._subs.get(sub.channel) is not sub:
                return
            if isinstance(reply, ConnectionLost):
                sub._awaiting_reply = False  # sent again on the next connection
                return
            if isinstance(reply, ClientError) or reply.get("op") == "err":
                error = reply if isinstance(reply, ClientError) else ClientError.from_frame(reply)
                error.channel = sub.channel
                if sub._on_refused(error):
                    del self._subs[sub.channel]
                else:
                    delay = self._backoff.retry_delay(sub._failures)
                    sub._retry = asyncio.get_running_loop().call_later(delay, self._retry_sub, sub)
                return
            data = reply.get("data")
            sub._on_reply(data if isinstance(data, Mapping) else {})

        try:
            self._request(frame, None, settle)
        except ClientError as error:  # too_many_requests: retried like a refusal
            settle(error)

    def _retry_sub(self, sub: Subscription) -> None:
        if self._subs.get(sub.channel) is sub and self._live and not sub._sent:
            self._send_sub(sub)

    async def _unsubscribe(self, sub: Subscription) -> None:
        sub._stop()
        if self._subs.get(sub.channel) is not sub:
            return
        del self._subs[sub.channel]
        if not sub._sent or not self._live:
            return
        try:
            await self._call({"op": "unsub", "ch": sub.channel})
        except ClientError as error:
            # not_subscribed: the sub was refused or ended meanwhile; disconnected: the hub forgot us anyway
            if error.code not in ("not_subscribed", "disconnected"):
                raise

    def _presence_list_limit(self) -> float:
        """The room size up to which the hub lists every member and announces joins one by one."""
        limit = self._hello.limits.get("presence_list") if self._hello is not None else None
        return limit if limit is not None and limit > 0 else float("inf")  # a hub without it lists everyone

    async def _walk_presence(self, channel: str) -> Walk:
        limit = self._presence_list_limit()
        members: dict[str, Member] = {}
        cursor: str | None = None
        for _ in range(MAX_PRESENCE_PAGES):
            page = await self.presence_page(channel, cursor=cursor)
            members.update((member.client, member) for member in page.members)
            if page.count > limit:
                return Walk(members, page.count, whole=False)
            cursor = page.cursor
            if cursor is None:
                return Walk(members, page.count, whole=True)
        return Walk(members, len(members), whole=False)
