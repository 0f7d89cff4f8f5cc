"""A test client of the fallback transport (hub/sse.py) over real HTTP: ``GET /sse`` read as a stream with httpx,
frames sent with ``POST /sse/<key>``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import orjson


class SSEClient:
    """One session over the fallback transport. ``frames`` holds every frame the stream carried, in order;
    ``closed`` is the final ``close`` frame's (code, reason), or None while the stream is open."""

    def __init__(self, base: str, http: httpx.AsyncClient, response: httpx.Response) -> None:
        self.base = base
        self.http = http
        self.response = response
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.close_frame: dict[str, Any] | None = None
        self.ended = asyncio.Event()
        self.hello: dict[str, Any] = {}
        self._next_id = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls,
        base: str,
        *,
        token: str | None = None,
        query_token: str | None = None,
        headers: dict[str, str] | None = None,
        expect_hello: bool = True,
    ) -> SSEClient:
        http = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10.0, read=None))
        request_headers = dict(headers or {})
        if token is not None:
            request_headers["Authorization"] = f"Bearer {token}"
        params = {"token": query_token} if query_token is not None else None
        request = http.build_request("GET", "/sse", headers=request_headers, params=params)
        response = await http.send(request, stream=True)
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        client = cls(base, http, response)
        if expect_hello:
            hello = await client.next_frame()
            assert hello["op"] == "hello", hello
            client.hello = hello["data"]
        return client

    @property
    def key(self) -> str:
        return str(self.hello["session"])

    async def _read(self) -> None:
        data: list[str] = []
        try:
            async for line in self.response.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line == "" and data:
                    frame = orjson.loads("\n".join(data))
                    data = []
                    if frame.get("op") == "close":
                        self.close_frame = frame
                    await self.frames.put(frame)
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            self.ended.set()

    async def next_frame(self, timeout: float = 5.0, *, skip_pings: bool = True) -> dict[str, Any]:
        while True:
            frame = await asyncio.wait_for(self.frames.get(), timeout)
            if skip_pings and frame.get("op") == "ping":
                continue
            return frame

    async def closed(self, timeout: float = 5.0) -> tuple[int, str]:
        """The close frame's code and reason, once the stream has ended with one."""
        await asyncio.wait_for(self.ended.wait(), timeout)
        assert self.close_frame is not None, "the stream ended without a close frame"
        return self.close_frame["code"], self.close_frame["reason"]

    async def post(self, *frames: dict[str, Any] | str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        lines = [frame if isinstance(frame, str) else orjson.dumps(frame).decode() for frame in frames]
        return await self.http.post(f"/sse/{key or self.key}", content="\n".join(lines), **kwargs)

    async def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send one request (with a fresh id) and return its reply; events that come first are kept aside."""
        self._next_id += 1
        request_id = f"r{self._next_id}"
        answer = await self.post({**frame, "id": request_id})
        assert answer.status_code == 204, answer.text
        return await self.reply(request_id, timeout)

    async def reply(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        aside: list[dict[str, Any]] = []
        try:
            while True:
                frame = await self.next_frame(timeout)
                if frame.get("id") == request_id:
                    return frame
                aside.append(frame)
        finally:
            for frame in aside:
                self.frames.put_nowait(frame)

    async def next_event(self, channel: str, event_type: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        aside: list[dict[str, Any]] = []
        try:
            while True:
                frame = await self.next_frame(timeout)
                if frame.get("op") == "ev" and frame["ch"] == channel and event_type in (None, frame["type"]):
                    return frame
                aside.append(frame)
        finally:
            for frame in aside:
                self.frames.put_nowait(frame)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self.response.aclose()
        await self.http.aclose()
