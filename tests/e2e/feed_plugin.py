"""A test-only plugin: ``feed:<room>``, a recoverable channel with no rate limit and a small history window.

``feed.post`` publishes ``feed.posted`` with the same body; the snapshot is a fixed marker, so tests can tell
a snapshot reply from a recovery.
"""

from __future__ import annotations

from types import ModuleType

from pydantic import BaseModel

from hub import Channel, Context, hookimpl


class Post(BaseModel):
    n: int
    source: str = ""


class Snapshot(BaseModel):
    note: str


def make_feed_plugin(history_size: int = 5) -> ModuleType:
    feed = Channel("feed", recoverable=True, history_size=history_size, presence=True)
    feed.event("feed.posted", Post)

    @feed.on("feed.post", Post)
    async def post(ctx: Context, msg: Post) -> None:
        await ctx.publish("feed.posted", msg)

    @feed.snapshot
    async def snapshot(ctx: Context) -> Snapshot:
        return Snapshot(note="full state")

    module = ModuleType("feed_plugin")
    module.hub_channels = hookimpl(lambda: [feed])  # type: ignore[attr-defined]
    return module
