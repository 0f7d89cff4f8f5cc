"""A hub node in a process of its own whose ``slow:<room>`` handler stops between claiming a publish's ``mid`` and
publishing, for test_mid_claim.py to kill it there: ``python -m tests.chaos.slow_node <redis_url> <prefix> <data_dir>``.

It prints ``ready <ws url>`` once serving and ``handling <n>`` when a handler starts; then it waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

from hub import Channel, Context, hookimpl
from hub.testing import HubServer, test_settings


class Post(BaseModel):
    n: int


def make_slow_plugin(delay: float) -> ModuleType:
    """``slow.post`` publishes ``slow.posted`` on a recoverable channel after ``delay`` seconds (0: at once)."""
    slow = Channel("slow", recoverable=True, history_size=100)
    slow.event("slow.posted", Post)

    @slow.on("slow.post", Post)
    async def post(ctx: Context, msg: Post) -> Post:
        if delay:
            print(f"handling {msg.n}", flush=True)
            await asyncio.sleep(delay)
        await ctx.publish("slow.posted", msg)
        return msg

    module = ModuleType(f"slow_plugin_{delay}")
    module.hub_channels = hookimpl(lambda: [slow])  # type: ignore[attr-defined]
    return module


def main() -> None:
    redis_url, prefix, data_dir = sys.argv[1:4]
    settings = test_settings(Path(data_dir), redis_url=redis_url, redis_prefix=prefix, probe_interval=0.1,
                             probe_timeout=0.6, heartbeat_timeout=30.0)  # fmt: skip
    server = HubServer(settings, plugins={"slow": make_slow_plugin(delay=3600.0)}).start()
    print(f"ready {server.ws_url}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
