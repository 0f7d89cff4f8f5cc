"""A test-only plugin for the shutdown tests, loaded by a real ``hub serve`` through an entry point (the tests put a
``.dist-info`` naming it on the child's PYTHONPATH): ``slow:<room>``, a recoverable channel whose ``slow.post``
handler announces itself, holds for ``hold`` seconds, then publishes and persists the post (``store_key``, so the
store's group commit is part of the reply). The snapshot lists the posts in the store, so a restarted node shows
which writes were kept.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from hub import Channel, Context, hookimpl


class Post(BaseModel):
    n: int = Field(ge=0, le=999_999)
    hold: float = Field(default=0.0, ge=0.0, le=30.0)  # seconds the handler waits before publishing
    pad: str = Field(default="", max_length=60_000)  # bulk, for filling a socket that is not read


class Started(BaseModel):
    n: int


class Stored(BaseModel):
    posts: list[int]


slow = Channel("slow", recoverable=True, history_size=1000)
slow.event("slow.started", Started)
slow.event("slow.posted", Post)


@slow.on("slow.post", Post)
async def post(ctx: Context, msg: Post) -> Started:
    await ctx.publish("slow.started", Started(n=msg.n), ephemeral=True)  # the test knows the handler runs
    await asyncio.sleep(msg.hold)
    await ctx.publish("slow.posted", msg, store_key=f"post:{msg.n:06d}")
    return Started(n=msg.n)


@slow.snapshot
async def snapshot(ctx: Context) -> Stored:
    return Stored(posts=[int(key.removeprefix("post:")) for key, _value in await ctx.store.scan("post:")])


@hookimpl
def hub_channels() -> list[Channel]:
    return [slow]
