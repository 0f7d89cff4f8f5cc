"""HubAPI: a small typed client of the hub's server API (``/api/v1``) for backends, async, on httpx.

::

    async with HubAPI("https://hub.example.com", api_key="...") as api:
        result = await api.publish("chat:lobby", "chat.send", {"text": "Deploy finished"}, idempotency_key="d-42")
        page = await api.channels(prefix="chat:")

Every failure is a :class:`HubAPIError` carrying the hub's error ``code`` (``unauthorized``, ``forbidden``,
``invalid``, ``unknown_channel``, ...; ``unreachable`` when no answer came), its sentence and the HTTP status.
Answers are the models of hub/api_models.py, as the server sends them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from hub.api_models import (
    ApiError,
    ChannelInfo,
    ChannelPage,
    ClientPage,
    ClusterInfo,
    DisconnectResult,
    HistoryPage,
    PresenceCount,
    PresencePage,
    PublishResult,
)
from hub.types import JSON

Model = TypeVar("Model", bound=BaseModel)

PREFIX = "/api/v1"


class HubAPIError(Exception):
    """The hub refused a call (``status`` its HTTP status), or could not be reached (``status`` 0)."""

    def __init__(self, status: int, code: str, msg: str, details: list[JSON] | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        where = f"HTTP {self.status}, " if self.status else ""
        fields = "; ".join(_field_error(detail) for detail in self.details or ())
        return f"{self.msg} ({where}{self.code}){': ' + fields if fields else ''}"


def _field_error(detail: JSON) -> str:
    if not isinstance(detail, dict):
        return str(detail)
    loc = [str(part) for part in detail.get("loc", ()) if part not in ("body", "query", "header", "path")]
    return f"{'.'.join(loc) or 'request'}: {detail.get('msg', '')}"


class HubAPI:
    """One hub (any node of a cluster: every call covers them all). Credentials: an API key of the hub's
    ``HUB_API_KEYS``, or a JWT with the ``publish`` scope (publishing only) or ``admin`` (everything)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if (api_key is None) == (token is None):
            raise ValueError("give an api_key or a token (one of them)")
        headers = {"X-API-Key": api_key} if api_key is not None else {"Authorization": f"Bearer {token}"}
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    async def __aenter__(self) -> HubAPI:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- calls ----------------------------------------------------------------------------------------------

    async def publish(
        self, channel: str, type: str, data: JSON = None, *, idempotency_key: str | None = None
    ) -> PublishResult:
        """Publish a message as a socket's ``pub`` would (the type's model, the channel's policies, the handler).
        ``result.data`` is the handler's reply; ``result.duplicate`` is true for a repeated ``idempotency_key``."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        body = {"channel": channel, "type": type, "data": data}
        return await self._call(PublishResult, "POST", "/publish", json=body, headers=headers)

    async def channels(self, prefix: str = "", *, limit: int = 100, cursor: str | None = None) -> ChannelPage:
        """One page of the channels with subscribers, in name order (``page.cursor`` for the next one)."""
        params: dict[str, Any] = {"prefix": prefix, "limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        return await self._call(ChannelPage, "GET", "/channels", params=params)

    async def all_channels(self, prefix: str = "", *, page_size: int = 1000) -> AsyncIterator[ChannelInfo]:
        """Every channel with subscribers, page after page."""
        cursor: str | None = None
        while True:
            page = await self.channels(prefix, limit=page_size, cursor=cursor)
            for channel in page.channels:
                yield channel
            if page.cursor is None:
                return
            cursor = page.cursor

    async def presence(self, channel: str, *, cursor: str | None = None, limit: int | None = None) -> PresencePage:
        params: dict[str, Any] = {}
        if cursor is not None:
            params["cursor"] = cursor
        if limit is not None:
            params["limit"] = limit
        return await self._call(PresencePage, "GET", f"/channels/{_quoted(channel)}/presence", params=params)

    async def presence_count(self, channel: str) -> int:
        answer = await self._call(PresenceCount, "GET", f"/channels/{_quoted(channel)}/presence/count")
        return answer.count

    async def history(self, channel: str, *, since: int | None = None, limit: int = 100) -> HistoryPage:
        """A recoverable channel's kept events after offset ``since`` (or the latest ``limit``)."""
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since
        return await self._call(HistoryPage, "GET", f"/channels/{_quoted(channel)}/history", params=params)

    async def clients(self, *, user: str | None = None, limit: int = 100) -> ClientPage:
        params: dict[str, Any] = {"limit": limit}
        if user is not None:
            params["user"] = user
        return await self._call(ClientPage, "GET", "/clients", params=params)

    async def disconnect(
        self,
        *,
        user: str | None = None,
        client: str | None = None,
        code: int = 4011,
        reason: str = "Disconnected by the server.",
    ) -> DisconnectResult:
        """Close every connection of ``user``, or the connection ``client``, on every node."""
        body = {"user": user, "client": client, "code": code, "reason": reason}
        return await self._call(DisconnectResult, "POST", "/disconnect", json=body)

    async def info(self) -> ClusterInfo:
        return await self._call(ClusterInfo, "GET", "/info")

    # ---- the one place answers are read ------------------------------------------------------------------------

    async def _call(self, model: type[Model], method: str, path: str, **kwargs: Any) -> Model:
        try:
            response = await self._http.request(method, PREFIX + path, **kwargs)
        except httpx.HTTPError as exc:
            raise HubAPIError(
                0, "unreachable", f"Cannot reach the hub at {self.url}: {exc or type(exc).__name__}"
            ) from None
        if not response.is_success:
            raise _refusal(response)
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise HubAPIError(
                response.status_code, "bad_response", f"The hub's answer to {method} {path} is not what it should be."
            ) from None


def _quoted(channel: str) -> str:
    return quote(channel, safe=":@=+")


EDGE_CODES = {413: "too_large", 429: "rate_limited", 503: "unavailable"}
"""Refusals of the hub's HTTP edge, before the API (``{"detail": ...}``): a body past max_body_bytes, too many
connections from one address, too many bodies in flight."""


def _refusal(response: httpx.Response) -> HubAPIError:
    status = response.status_code
    try:
        error = ApiError.model_validate_json(response.content)
    except ValidationError:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        text = detail if isinstance(detail, str) else response.text.strip()[:300] or response.reason_phrase
        return HubAPIError(status, EDGE_CODES.get(status, "http_error"), text)
    return HubAPIError(status, error.code, error.msg, error.details)
