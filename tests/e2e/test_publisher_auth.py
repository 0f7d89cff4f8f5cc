"""Hub.authenticate_publisher on a real server: API keys (X-API-Key or Bearer) and JWTs with a scope, over HTTP."""

from __future__ import annotations

from types import ModuleType
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Header

from hub import Hub, hookimpl


def publisher_plugin() -> ModuleType:
    def routes(hub: Hub) -> APIRouter:
        router = APIRouter()

        @router.post("/api/whoami")
        async def whoami(
            authorization: Annotated[str | None, Header()] = None,
            x_api_key: Annotated[str | None, Header()] = None,
        ) -> dict[str, Any]:
            identity = hub.authenticate_publisher(authorization, x_api_key)
            return {"user": identity.user, "scopes": sorted(identity.scopes)}

        return router

    module = ModuleType("publisher_plugin")
    module.hub_http_routes = hookimpl(routes)  # type: ignore[attr-defined]
    return module


async def test_api_keys_and_scoped_tokens(hub_server: Any) -> None:
    server = hub_server(plugins={"publisher": publisher_plugin()}, api_keys=["key-one-0123456789", "key-two-987654"])
    async with httpx.AsyncClient(base_url=server.url) as http:

        async def call(**headers: str) -> httpx.Response:
            return await http.post("/api/whoami", headers=headers)

        for headers in ({"X-API-Key": "key-two-987654"}, {"Authorization": "Bearer key-one-0123456789"}):
            reply = await call(**headers)
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"user": "api-key", "scopes": ["publish"]}
        scoped = server.token("svc", scopes=("publish", "other"))
        reply = await call(Authorization=f"Bearer {scoped}")
        assert reply.status_code == 200
        assert reply.json()["user"] == "svc"

        refused = [
            ({}, 401),
            ({"X-API-Key": "key-one"}, 401),  # a prefix of a key is not the key
            ({"Authorization": "Bearer nope"}, 401),
            ({"Authorization": "Basic a2V5"}, 401),
            ({"Authorization": "Bearer a.b.c"}, 401),  # shaped like a JWT, not one
            ({"Authorization": f"Bearer {server.token('alice')}"}, 403),  # a user's token without the scope
        ]
        for headers, status in refused:
            reply = await call(**headers)
            assert reply.status_code == status, (headers, reply.text)
            assert reply.json()["detail"]
        assert (await call()).headers["www-authenticate"] == "Bearer"


async def test_no_api_key_is_valid_when_none_is_configured(hub_server: Any) -> None:
    server = hub_server(plugins={"publisher": publisher_plugin()})
    async with httpx.AsyncClient(base_url=server.url) as http:
        for headers in ({"X-API-Key": ""}, {"Authorization": "Bearer x"}):
            assert (await http.post("/api/whoami", headers=headers)).status_code == 401
