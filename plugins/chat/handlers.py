"""chat's channel declaration and handlers: send, edit, delete, typing; history lives in the store."""

from __future__ import annotations

import time

from pydantic_settings import BaseSettings, SettingsConfigDict

from hub import Channel, Context, HubError, RateLimit, sortable_id
from plugins.chat.messages import (
    Author,
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


settings = ChatSettings()

chat = Channel(
    "chat",
    description="Chat rooms with history, typing indicators and presence.",
    recoverable=True,
    history_size=settings.history_size,
    presence=True,
)
chat.event("chat.posted", MessagePosted)
chat.event("chat.edited", MessagePosted)
chat.event("chat.deleted", MessageDeleted)
chat.event("chat.typing", UserTyping)

_sends = 0
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


@chat.on("chat.send", SendMessage, rate_limit=RateLimit(rate=settings.send_rate, burst=settings.send_burst))
async def send(ctx: Context, msg: SendMessage) -> MessagePosted:
    message = MessagePosted(
        id=new_message_id(),
        author=Author(user=ctx.identity.user, name=ctx.identity.name),
        text=msg.text,
        ts=time.time(),
    )
    await ctx.store.put(_key(ctx.room, message.id), message.model_dump_json().encode())
    await ctx.publish("chat.posted", message)
    global _sends
    _sends += 1
    if _sends % TRIM_EVERY == 0:
        await ctx.store.trim(f"{ctx.room}/", settings.retention)
    return message


@chat.on("chat.edit", EditMessage, rate_limit=RateLimit(rate=2, burst=5))
async def edit(ctx: Context, msg: EditMessage) -> MessagePosted:
    message = await _load(ctx, msg.id)
    edited = message.model_copy(update={"text": msg.text, "edited_ts": time.time()})
    await ctx.store.put(_key(ctx.room, msg.id), edited.model_dump_json().encode())
    await ctx.publish("chat.edited", edited)
    return edited


@chat.on("chat.delete", DeleteMessage, rate_limit=RateLimit(rate=2, burst=5))
async def delete(ctx: Context, msg: DeleteMessage) -> None:
    await _load(ctx, msg.id)
    await ctx.store.delete(_key(ctx.room, msg.id))
    await ctx.publish("chat.deleted", MessageDeleted(id=msg.id))


@chat.on("chat.typing", Typing, rate_limit=RateLimit(rate=1, burst=3))
async def typing(ctx: Context, msg: Typing) -> None:
    event = UserTyping(user=ctx.identity.user, name=ctx.identity.name, active=msg.active)
    await ctx.publish("chat.typing", event, ephemeral=True)


@chat.snapshot
async def recent_messages(ctx: Context) -> ChatSnapshot:
    records = await ctx.store.scan(f"{ctx.room}/", limit=settings.snapshot_size, reverse=True)
    return ChatSnapshot(messages=[MessagePosted.model_validate_json(value) for _key, value in reversed(records)])
