"""A node killed while it runs a publish with a `mid`: the handler has claimed the mid and has not published yet.
The client retries with the same `mid` on another node, as protocol §8 tells it to. The message must then be
delivered, once. The retry used to be answered {"duplicate": true} and the message was never published, so the
publisher counted as acknowledged a message nobody got (found by test_failover.py, about one run in two).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.testing import HubClient
from tests.chaos.conftest import ROOT
from tests.chaos.slow_node import make_slow_plugin

pytestmark = pytest.mark.chaos

RETRY_FOR = 5.0  # seconds a client keeps retrying; a fixed hub may hold an orphaned claim about this long


async def test_a_publish_cut_off_by_a_kill_is_delivered_when_retried(
    tmp_path: Path, hub_server: Any, redis_url: str
) -> None:
    prefix = f"mid{uuid.uuid4().hex[:8]}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.chaos.slow_node", redis_url, prefix, str(tmp_path / "slow"),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    clients: list[HubClient] = []
    try:
        assert process.stdout is not None
        ready = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().split()
        assert ready[:1] == ["ready"], ready
        survivor = hub_server(plugins={"slow": make_slow_plugin(delay=0)}, redis_url=redis_url, redis_prefix=prefix,
                              probe_interval=0.1, probe_timeout=0.6)  # fmt: skip
        watcher = await HubClient.connect(survivor.ws_url)
        clients.append(watcher)
        await watcher.sub("slow:room")

        doomed = await HubClient.connect(ready[1], token=survivor.token("alice"))
        clients.append(doomed)
        frame = {"op": "pub", "id": 1, "ch": "slow:room", "type": "slow.post", "data": {"n": 1}, "mid": "m-1"}
        await doomed.send_raw(orjson.dumps(frame).decode())
        assert (await asyncio.wait_for(process.stdout.readline(), 10)).decode().split() == ["handling", "1"]
        process.send_signal(signal.SIGKILL)  # the mid is claimed in Redis; nothing was published
        await process.wait()
        await doomed.closed()

        retrying = await HubClient.connect(survivor.ws_url, token=survivor.token("alice"))
        clients.append(retrying)
        replies = []
        deadline = time.monotonic() + RETRY_FOR
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # an err (the first attempt's fate unknown yet): retry
                replies.append(await retrying.pub("slow:room", "slow.post", {"n": 1}, mid="m-1"))
                if replies[-1] != {"duplicate": True}:
                    break
            await asyncio.sleep(0.2)
        try:
            event = await watcher.next_event("slow:room", "slow.posted", timeout=2)
        except TimeoutError:
            raise AssertionError(f"never published; {len(replies)} retries, answered {replies[-1:]}") from None
        assert event["data"] == {"n": 1}
        await watcher.no_event("slow:room", "slow.posted", wait=0.3)  # once
    finally:
        for client in clients:
            await client.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
