"""create_app(settings) -> the ASGI app: the socket at /ws, HTTP endpoints beside it, lifespan for backends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.lowlevel
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send

from hub.admin_http import admin_routes
from hub.asgi_extensions import FRAME_LIMIT_EXTENSION
from hub.asyncapi import asyncapi_document, asyncapi_servers, server_host
from hub.connection import WebSocketEndpoint
from hub.http_edge import install_http_edge
from hub.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from hub.plugin_catalog import PluginCatalog
from hub.runtime import Runtime
from hub.server_api import router as server_api
from hub.settings import HubSettings
from hub.sse import POST_PREFIX as SSE_POST_PREFIX
from hub.sse import STREAM_PATH as SSE_STREAM_PATH
from hub.sse import SSEEndpoint

STATIC_DIR = Path(__file__).parent / "static"
access_log = logging.getLogger("hub.access")


class HubApp(FastAPI):
    """FastAPI, with the hub's socket at /ws served straight from the ASGI call.

    A connection's ASGI task stays suspended in its receive loop for the socket's whole life, and every layer
    it passed on the way in (FastAPI's and Starlette's middleware, exception handlers, router) keeps a frame
    and objects alive: about 5 KB per idle socket. /ws uses none of them, so it skips them. The route is
    still registered, so /ws shows in the app's routes and behaves the same under any other ASGI server.
    """

    websocket_endpoint: WebSocketEndpoint | None = None
    sse_endpoint: SSEEndpoint | None = None  # the fallback transport (hub/sse.py), also served straight from here

    def going_away(self) -> None:
        """The server began to stop (called by :class:`hub.http_protocol.HubHTTPProtocol`, whose shutdown uvicorn
        calls first): the SSE streams end now with 1001, as the sockets do, instead of when the bound runs out."""
        if self.sse_endpoint is not None:
            self.sse_endpoint.going_away()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.websocket_endpoint
        if endpoint is not None and scope["type"] == "websocket":
            path: str = scope["path"]
            root: str = scope.get("root_path") or ""
            if root and path.startswith(root):
                path = path[len(root) :]
            if path == "/ws":
                await endpoint(scope, receive, send)
                return
            limit = endpoint.hub.websocket_frame_limit(path)
            setter = (scope.get("extensions") or {}).get(FRAME_LIMIT_EXTENSION, {}).get("set")
            if limit is not None and setter is not None:
                setter(limit)  # a plugin's route that takes bigger messages (Hub.limit_websocket_frames)
        elif self.sse_endpoint is not None and scope["type"] == "http":
            path = scope["path"]
            root = scope.get("root_path") or ""
            if root and path.startswith(root):
                path = path[len(root) :]
            if path == SSE_STREAM_PATH or path.startswith(SSE_POST_PREFIX):
                await self.sse_endpoint(scope, receive, send, path)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: HubSettings | None = None, *, plugins: PluginCatalog | None = None) -> HubApp:
    """The app of one hub: ``plugins`` (default: the installed ones ``settings.plugins`` names) are built for it."""
    settings = settings or HubSettings()
    catalog = plugins if plugins is not None else PluginCatalog.from_entry_points(settings.plugins)
    hub = Runtime(settings, catalog)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # anyio (under Starlette's middleware) imports its event-loop backend at first use. Done now: the first
        # requests may come when connections hold every file descriptor, and an import that cannot open its file
        # would fail every request with a traceback.
        await anyio.lowlevel.checkpoint()
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = HubApp(title="Hub", version="0.1.0", lifespan=lifespan, docs_url="/api/docs", redoc_url=None)
    app.state.hub = hub
    app.websocket_endpoint = WebSocketEndpoint(hub)
    app.router.routes.append(WebSocketRoute("/ws", app.websocket_endpoint))
    if settings.sse:
        app.sse_endpoint = SSEEndpoint(app.websocket_endpoint)
    install_http_edge(app)
    app.include_router(server_api)  # /api/v1: the server API (docs/operations.md, "Server API")

    @app.middleware("http")
    async def log_access(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        # The path only: a query string may carry a token.
        client = request.client.host if request.client else "-"
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        access_log.info(
            '%s "%s %s" %d %.1fms',
            client,
            request.method,
            request.url.path,
            response.status_code,
            duration_ms,
            # fields of their own in JSON logs (HUB_LOG_FORMAT=json)
            extra={
                "client": client,
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        readiness = await hub.readiness()
        return JSONResponse(readiness.as_json(), status_code=200 if readiness.ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        # under --workers: which worker answered (the body adds up all of them)
        headers = {"X-Hub-Worker": str(hub.metrics.workers.pid)} if hub.metrics.workers is not None else None
        return Response(hub.metrics.render(), media_type=METRICS_CONTENT_TYPE, headers=headers)

    static_dirs = hub.plugins.static_dirs()
    panels = {name: f"/plugins/{name}/panel.js" for name, path in static_dirs.items() if (path / "panel.js").is_file()}

    asyncapi: dict[str, Any] = {}  # built at the first request: a node's channels never change

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_json(request: Request) -> JSONResponse:
        """The wire protocol of this node's channels as an AsyncAPI 3.0.0 document (hub/asyncapi.py)."""
        if not asyncapi:  # about 0.1 s of schema generation for the bundled plugins: off the event loop
            asyncapi.update(await asyncio.to_thread(asyncapi_document, hub.router))
        host = server_host(request.headers.get("host"), f"{settings.host}:{settings.port}")
        return JSONResponse({**asyncapi, "servers": asyncapi_servers(host, secure=request.url.scheme == "https")})

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return {
            "plugins": hub.plugins.names,
            "panels": panels,
            "channels": {
                namespace: {
                    "plugin": hub.router.owner(namespace),
                    "messages": sorted(channel.inbound),
                    "events": sorted(channel.events),
                    "recoverable": channel.recoverable,
                    "presence": channel.presence,
                    "conflate": channel.conflate,
                }
                for namespace, channel in hub.router.channels.items()
            },
            "connections": len(hub.sessions),
        }

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/hub.js", include_in_schema=False)
    async def sdk() -> FileResponse:
        return FileResponse(STATIC_DIR / "hub.js", media_type="text/javascript")

    if settings.admin:
        app.include_router(admin_routes(settings, hub.authenticator))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for name, path in static_dirs.items():
        app.mount(f"/plugins/{name}", StaticFiles(directory=path), name=f"plugin-{name}")

    for router in hub.plugins.http_routes():
        app.include_router(router)
    return app
