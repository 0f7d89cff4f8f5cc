"""chat: the plugin object — its settings, its channel ``chat:<room>`` and the handlers of send, edit, delete and
typing. Messages live in the plugin's store; the channel keeps recent history for recovery."""

from __future__ import annotations

import time

from pydantic_settings import BaseSettings, SettingsConfigDict

from hub import Channel, Context, Hub, HubError, Plugin, RateLimit, hookimpl, sortable_id
from hub_realtime_plugins.chat.messages import (
    Author,
    ChatPresence,
    ChatSnapshot,
    DeleteMessage,
    EditMessage,
    MessageDeleted,
    MessagePosted,
    SendMessage,
    Typing,
    UserTyping,
)


class ChatSettings(BaseSettings):
    """chat's options, from HUB_CHAT_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="HUB_CHAT_", extra="ignore")

    snapshot_size: int = 50  # messages a late joiner gets in its sub reply
    history_size: int = 500  # events kept for recovery after a short disconnect
    retention: int = 10_000  # messages kept per room in the store; older ones are deleted
    send_rate: float = 5.0  # chat.send per second per connection (benchmarks lift it)
    send_burst: int = 10


TRIM_EVERY = 100  # sends between two trims of a room's stored log


def new_message_id() -> str:
    """Sortable by time, then random (``hub.sortable_id``); edits and deletes check the author, not the id."""
    return sortable_id()


def _key(room: str, message_id: str) -> str:
    return f"{room}/{message_id}"


async def _load(ctx: Context, message_id: str) -> MessagePosted:
    raw = await ctx.store.get(_key(ctx.room, message_id))
    if raw is None:
        raise HubError("not_found", f"No message {message_id!r} in {ctx.channel!r}.")
    message = MessagePosted.model_validate_json(raw)
    if message.author.user != ctx.identity.user:
        raise HubError("forbidden", "Only the author may change a message.")
    return message


class Chat(Plugin):
    """Chat rooms ``chat:<room>``: one per hub, built with ``HUB_CHAT_*`` settings (or ``settings``)."""

    def __init__(self, hub: Hub, settings: ChatSettings | None = None) -> None:
        super().__init__(hub)
        self.settings = settings or hub.settings(ChatSettings)
        self.sends = 0  # chat.send handled by this hub: every TRIM_EVERY-th trims the room's stored log
        self.channel = chat = Channel(
            "chat",
            description="Chat rooms with history, typing indicators and presence.",
            recoverable=True,
            history_size=self.settings.history_size,
            presence=True,
            presence_meta=ChatPresence,  # {"away": true} while the member's tab is hidden
        )
        chat.event("chat.posted", MessagePosted)
        chat.event("chat.edited", MessagePosted)
        chat.event("chat.deleted", MessageDeleted)
        chat.event("chat.typing", UserTyping)
        send_limit = RateLimit(rate=self.settings.send_rate, burst=self.settings.send_burst)
        chat.on("chat.send", SendMessage, rate_limit=send_limit)(self.send)
        chat.on("chat.edit", EditMessage, rate_limit=RateLimit(rate=2, burst=5))(self.edit)
        chat.on("chat.delete", DeleteMessage, rate_limit=RateLimit(rate=2, burst=5))(self.delete)
        chat.on("chat.typing", Typing, rate_limit=RateLimit(rate=1, burst=3))(self.typing)
        chat.snapshot(self.recent_messages)

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    async def send(self, ctx: Context, msg: SendMessage) -> MessagePosted:
        message = MessagePosted(
            id=new_message_id(),
            author=Author(user=ctx.identity.user, name=ctx.identity.name),
            text=msg.text,
            ts=time.time(),
        )
        # Stored and published in one step (one round trip on Redis), durable before anyone sees the event.
        await ctx.publish("chat.posted", message, store_key=_key(ctx.room, message.id))
        self.sends += 1
        if self.sends % TRIM_EVERY == 0:
            await ctx.store.trim(f"{ctx.room}/", self.settings.retention)
        return message

    async def edit(self, ctx: Context, msg: EditMessage) -> MessagePosted:
        message = await _load(ctx, msg.id)
        edited = message.model_copy(update={"text": msg.text, "edited_ts": time.time()})
        await ctx.publish("chat.edited", edited, store_key=_key(ctx.room, msg.id))
        return edited

    async def delete(self, ctx: Context, msg: DeleteMessage) -> None:
        await _load(ctx, msg.id)
        await ctx.store.delete(_key(ctx.room, msg.id))
        await ctx.publish("chat.deleted", MessageDeleted(id=msg.id))

    async def typing(self, ctx: Context, msg: Typing) -> None:
        event = UserTyping(user=ctx.identity.user, name=ctx.identity.name, active=msg.active)
        await ctx.publish("chat.typing", event, ephemeral=True)

    async def recent_messages(self, ctx: Context) -> ChatSnapshot:
        records = await ctx.store.scan(f"{ctx.room}/", limit=self.settings.snapshot_size, reverse=True)
        return ChatSnapshot(messages=[MessagePosted.model_validate_json(value) for _key, value in reversed(records)])
