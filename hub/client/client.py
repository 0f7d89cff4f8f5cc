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
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub.client.channels import Channels
from hub.client.dispatcher import cancel, logger
from hub.client.errors import ClientError, ConnectionLost
from hub.client.requests import Queued, Reply
from hub.client.socket import Loss, Opened, abort, closed_loss, decode, open_socket
from hub.client.types import Hello, StateChange, User
from hub.protocol import CloseCode, close_reason

AUTH_CLOSE_CODES = frozenset({CloseCode.AUTH_FAILED, CloseCode.AUTH_TIMEOUT, CloseCode.TOKEN_EXPIRED})
"""Close codes after which reconnecting with the same credentials cannot help (docs/protocol.md §13)."""

ABANDON_CODE = 4000  # the close code this client sends when it drops a socket itself (its handlers fell behind)


class Client(Channels):
    """An asyncio client of one hub (or of several nodes of one hub: ``url`` may list them).

    ::

        async with Client("ws://127.0.0.1:8000/ws", token=jwt) as client:
            client.subscribe("chat:lobby", events={"chat.posted": lambda event: print(event.data["text"])})
            await client.publish("chat:lobby", "chat.send", {"text": "hello"})

    Every time is in seconds. docs/client.md ("Python client") documents every option, method and event.
    """

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
