"""RedisNodes: the cluster's live nodes in a registry each node refreshes, and surveys over Redis pub/sub.

Keys and pub/sub names share the hash tag ``{nodes}`` (one slot of a Redis Cluster)::

    <prefix>:{nodes}:info            hash: node id -> the node's record (its describe())
    <prefix>:{nodes}:seen            sorted set: node id by its last refresh (ms since the epoch)
    <prefix>:{nodes}:ask             pub/sub: every node's requests, "<asker>|<request id>|<request>"
    <prefix>:{nodes}:reply:<node>    pub/sub: the answers to one node, "<answerer>|<request id>|<answer>"

A node refreshes its record every third of the TTL; one that stops (it died) is no longer live after the TTL and
is forgotten by the next refresh of any node. A survey is one PUBLISH; its reply count (the nodes subscribed to the
requests) tells how many answers to wait for, so a survey ends as soon as every node that got it answered, and a
dead node still in the registry only shows as missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.broker.protocols import Answer, BrokerUnavailable, NodeRecord, Survey
from hub.broker.redis import RedisConnection, milliseconds
from hub.broker.redis_scripts import NODE_REFRESH, NODES_LIVE
from hub.broker.redis_subscriber import ShardedSubscriber, Subscriber
from hub.redis_client import REDIS_ERRORS

log = logging.getLogger("hub.broker.redis")

MAX_ANSWERING = 32  # requests of other nodes answered at once; past it, a request goes unanswered (missing)


@dataclass(slots=True)
class _Pending:
    """One survey of this node, collecting answers."""

    expected: set[str]
    answers: dict[str, bytes] = field(default_factory=dict)
    receivers: int | None = None  # other nodes that got the request (PUBLISH's count, less this node)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        remote = len(self.answers) - 1  # this node's own answer is in answers too
        if self.expected <= self.answers.keys() or (self.receivers is not None and remote >= self.receivers):
            self.done.set()


class RedisNodes:
    def __init__(self, connection: RedisConnection, *, node_id: str, ttl: float = 15.0) -> None:
        self.connection = connection
        self.node_id = node_id
        self._ttl = ttl
        self._redis: Any = connection.client
        self._refresh_script = self._redis.register_script(NODE_REFRESH)
        self._live_script = self._redis.register_script(NODES_LIVE)
        self._keys = [connection.key("nodes", "info"), connection.key("nodes", "seen")]
        self._ask_name = connection.key("nodes", "ask")
        self._reply_name = connection.key("nodes", f"reply:{node_id}")
        self._subscriber: Subscriber | ShardedSubscriber = (ShardedSubscriber if connection.sharded else Subscriber)(
            self._redis,
            on_message=self._on_message,
            reconnect_delay=0.5,
            confirm_timeout=connection.timeout,
        )
        self._describe: Callable[[], bytes] | None = None
        self._answer: Answer | None = None
        self._pending: dict[str, _Pending] = {}
        self._answering: set[asyncio.Task[None]] = set()
        self._upkeep: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self, describe: Callable[[], bytes], answer: Answer) -> None:
        self._describe, self._answer = describe, answer
        names = [self._ask_name, self._reply_name]
        await self._subscriber.start(names)  # during an outage, it subscribes them once Redis is back
        for name in names:
            try:  # confirmed before the node is in the registry, so no survey misses it
                await self._subscriber.subscribe(name)
            except REDIS_ERRORS as exc:
                log.warning("node surveys: subscribing %s failed (%s); retrying in the background", name, exc)
        with contextlib.suppress(BrokerUnavailable):
            await self._refresh()
        self._upkeep = asyncio.create_task(self._upkeep_forever(), name="hub-redis-nodes")

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._upkeep is not None:
            self._upkeep.cancel()
            await asyncio.gather(self._upkeep, return_exceptions=True)
            self._upkeep = None
        for task in tuple(self._answering):
            task.cancel()
        await asyncio.gather(*self._answering, return_exceptions=True)
        with contextlib.suppress(*REDIS_ERRORS, BrokerUnavailable):
            info_key, seen_key = self._keys
            await self.connection.call(self._redis.zrem(seen_key, self.node_id))
            await self.connection.call(self._redis.hdel(info_key, self.node_id))
        await self._subscriber.close(self.connection.timeout)

    # ---- the registry --------------------------------------------------------------------------------

    async def _refresh(self) -> None:
        assert self._describe is not None
        now = int(time.time() * 1000)
        await self.connection.call(
            self._refresh_script(
                keys=self._keys,
                args=[self.node_id, self._describe(), now, now - milliseconds(self._ttl), milliseconds(self._ttl) * 2],
            )
        )

    async def _upkeep_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._refresh()
            except BrokerUnavailable as exc:
                log.warning("node registry refresh failed: %s", exc)

    async def live(self) -> list[NodeRecord]:
        oldest = int(time.time() * 1000) - milliseconds(self._ttl)
        found = await self.connection.call(self._live_script(keys=self._keys, args=[oldest]))
        records = [
            NodeRecord(_text(found[i]), bytes(found[i + 2]), float(found[i + 1]) / 1000)
            for i in range(0, len(found), 3)
        ]
        return sorted(records, key=lambda record: record.node_id)

    # ---- surveys -------------------------------------------------------------------------------------

    async def survey(self, request: bytes, timeout: float) -> Survey:
        assert self._answer is not None, "survey before start"
        expected = {record.node_id for record in await self.live()} | {self.node_id}
        request_id = secrets.token_hex(8)
        pending = self._pending[request_id] = _Pending(expected)
        try:
            receivers = await self.connection.call(
                self._send(self._ask_name, f"{self.node_id}|{request_id}|".encode() + request)
            )
            # This node is one of the receivers when its own subscription is up; it answers directly instead.
            pending.receivers = max(0, int(receivers) - 1)
            pending.answers[self.node_id] = await self._answer(request)
            pending.check()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await pending.done.wait()
        finally:
            del self._pending[request_id]
        missing = tuple(sorted(expected - pending.answers.keys()))
        return Survey(dict(pending.answers), missing)

    def _send(self, name: str, payload: bytes) -> Any:
        if self.connection.sharded:
            return self._redis.spublish(name, payload)
        return self._redis.publish(name, payload)

    def _on_message(self, name: str, data: bytes) -> None:
        sender, _, rest = data.partition(b"|")
        request_id, _, body = rest.partition(b"|")
        node = sender.decode(errors="replace")
        if name == self._reply_name:
            pending = self._pending.get(request_id.decode(errors="replace"))
            if pending is not None and node != self.node_id:
                pending.answers[node] = body
                pending.check()
        elif name == self._ask_name and node != self.node_id and not self._closing:
            if len(self._answering) >= MAX_ANSWERING:
                log.warning(
                    "node surveys: %d requests being answered; one from %s left unanswered", MAX_ANSWERING, node
                )
                return
            task = asyncio.create_task(self._reply(node, request_id, body), name="hub-node-answer")
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

    async def _reply(self, asker: str, request_id: bytes, request: bytes) -> None:
        assert self._answer is not None
        try:
            answer = await self._answer(request)
            payload = self.node_id.encode() + b"|" + request_id + b"|" + answer
            await self.connection.call(self._send(self.connection.key("nodes", f"reply:{asker}"), payload))
        except BrokerUnavailable as exc:
            log.warning("node surveys: the answer to %s was not sent: %s", asker, exc)
        except Exception:  # a task boundary: the asker counts this node as missing
            log.exception("node surveys: answering a request of %s failed", asker)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
