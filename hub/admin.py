"""Admin: the core's ``admin:overview`` channel, for identities with the ``admin`` scope only — every node's live
``admin.stats``, and the operator's actions (``admin.kick``, ``admin.publish``, ``admin.channel``), which act on
the whole cluster through :class:`hub.control.Control`. The page at ``/admin`` (hub/admin_http.py,
hub/static/admin.js) runs on it; docs/protocol.md §16 is its contract.

It is declared like a plugin's channel and goes through the same checks (its policy refuses anyone without the
scope before anything is read or sent), but it belongs to the core: the runtime adds it to the router itself
when ``HUB_ADMIN`` is on, whatever plugins run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from hub.admin_messages import ChannelDetails, ChannelQuery, Kick, Kicked, Publish, Published
from hub.admin_stats import NodeStats, StatsSource, node_stats
from hub.broker import BrokerUnavailable
from hub.channel import Channel
from hub.errors import HubError
from hub.protocol import ErrorCode
from hub.store import StoreUnavailable

if TYPE_CHECKING:
    from pydantic import BaseModel

    from hub.context import Context
    from hub.control import Control
    from hub.router import Router
    from hub.types import Identity

log = logging.getLogger("hub.admin")

ADMIN_SCOPE = "admin"
NAMESPACE = "admin"
OVERVIEW = "admin:overview"
OWNER = "hub"
"""The router's owner of the admin namespace: the core, not a plugin."""


def is_admin(identity: Identity) -> bool:
    """An identity the admin channel serves: signed in (not a guest) with the ``admin`` scope."""
    return not identity.anonymous and ADMIN_SCOPE in identity.scopes


def _admin_only(identity: Identity, room: str) -> bool:
    return is_admin(identity) and room == "overview"


class AdminNode(StatsSource, Protocol):
    """What the admin part needs of the node (:class:`hub.runtime.Runtime` is one)."""

    router: Router
    control: Control

    async def interest(self, channel: str) -> int: ...

    def revoke(
        self, channel: str, who: Callable[[Identity], bool], *, code: str = "forbidden", msg: str | None = None
    ) -> int: ...

    async def publish(
        self, channel: str, event_type: str, data: BaseModel, *, ephemeral: bool = False
    ) -> int | None: ...


class Admin:
    """The admin channel of one node: its declaration and handlers, and the ticker that publishes this node's
    ``admin.stats`` every ``HUB_ADMIN_INTERVAL`` while an admin anywhere in the cluster follows
    ``admin:overview``."""

    def __init__(self, node: AdminNode) -> None:
        self._node = node
        self.started_at = time.time()
        self._ticker: asyncio.Task[None] | None = None
        channel = Channel(
            NAMESPACE,
            description="The hub's admin view: every node's live stats and the operator's actions (admin scope).",
            can_subscribe=_admin_only,
            can_publish=_admin_only,
        )
        channel.event("admin.stats", NodeStats)
        channel.snapshot(self._snapshot)
        channel.on("admin.kick", Kick)(self._kick)
        channel.on("admin.publish", Publish)(self._publish)
        channel.on("admin.channel", ChannelQuery)(self._channel)
        self.channel = channel

    def stats(self) -> NodeStats:
        return node_stats(self._node, self.started_at)

    # ---- the ticker --------------------------------------------------------------------------------------

    def start(self) -> None:
        self.started_at = time.time()
        self._ticker = asyncio.create_task(self._tick(), name="hub-admin-stats")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    async def _tick(self) -> None:
        interval = self._node.settings.admin_interval
        while True:
            await asyncio.sleep(interval)  # a period, not a wait for something: nothing to await instead
            try:
                if await self._node.interest(OVERVIEW):  # some node has an admin watching
                    self._drop_non_admins()
                    await self._node.publish(OVERVIEW, "admin.stats", self.stats(), ephemeral=True)
            except (BrokerUnavailable, StoreUnavailable) as exc:
                log.warning("admin stats not published: %s", exc)
            except Exception:  # one bad round must not end the ticker (task boundary)
                log.exception("admin stats failed")

    def _drop_non_admins(self) -> None:
        """End the subscriptions of this node's connections that lost the scope since they subscribed (an
        ``auth`` with another token of the same user): the policy only runs when a request comes in."""
        self._node.revoke(
            OVERVIEW, lambda identity: not is_admin(identity), msg="This connection no longer has the admin scope."
        )

    # ---- the channel -------------------------------------------------------------------------------------

    async def _snapshot(self, ctx: Context) -> NodeStats:
        """A new watcher gets this node's stats at once; the other nodes' come with their next tick."""
        return self.stats()

    async def _kick(self, ctx: Context, message: Kick) -> Kicked:
        result = await self._node.control.disconnect(
            user=message.user, client=message.client, code=message.code, reason=message.reason
        )
        log.info(
            "admin %s closed %d connection(s) of %s with %d",
            ctx.identity.user, result.closed, message.client or f"user {message.user}", message.code,
        )  # fmt: skip
        return Kicked(closed=result.closed, missing_nodes=result.missing_nodes)

    async def _publish(self, ctx: Context, message: Publish) -> Published:
        self._plugin_channel(message.channel)
        result = await self._node.control.publish(
            ctx.identity, message.channel, message.type, message.data, idempotency_key=message.mid
        )
        log.info("admin %s published %r on %s", ctx.identity.user, message.type, message.channel)
        return Published(channel=message.channel, type=message.type, data=result.data, replies=result.replies)

    async def _channel(self, ctx: Context, message: ChannelQuery) -> ChannelDetails:
        name = message.channel
        spec = self._plugin_channel(name)
        control = self._node.control
        # The exact name sorts first among the names it prefixes.
        page = await control.channels(prefix=name, limit=1)
        found = page.channels[0] if page.channels and page.channels[0].channel == name else None
        details = ChannelDetails(
            channel=name,
            plugin=self._node.router.owner(spec.namespace),
            subscribers=found.subscribers if found else 0,
            nodes=found.nodes if found else 0,
            missing_nodes=page.missing_nodes,
            recoverable=spec.recoverable,
            presence=None,
            presence_count=None,
            events=None,
            epoch=None,
            offset=None,
        )
        if spec.presence:
            presence = await control.presence(name, limit=self._node.settings.admin_list_limit)
            details.presence, details.presence_count = presence.members, presence.count
        if spec.recoverable and message.events:
            history = await control.history(name, limit=message.events)
            details.events, details.epoch, details.offset = history.events, history.epoch, history.offset
        return details

    def _plugin_channel(self, name: str) -> Channel:
        """The declaration of a plugin's channel; ``bad_channel`` / ``unknown_channel`` / ``bad_request``."""
        spec, _room = self._node.router.resolve(name)
        if spec.namespace == NAMESPACE:
            raise HubError(ErrorCode.BAD_REQUEST, "The admin acts on plugins' channels, not on admin:*.")
        return spec
