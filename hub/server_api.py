"""The server API: HTTP and JSON under ``/api/v1`` for backends and operators, over :class:`hub.control.Control`.

Publish to any channel (as a socket's ``pub``), read a channel's presence and history, list channels and clients,
disconnect a user or a client, and the cluster's nodes, on every node of a cluster. Credentials are read from the
headers before anything else (:func:`hub.http_auth.request_publisher`): an API key (``X-API-Key`` or
``Authorization: Bearer``), or a JWT with the ``publish`` scope (``POST /api/v1/publish``) or the ``admin`` scope
(everything). Bodies are read after that, bounded and strict JSON. Every error is ``{"code", "msg", "details"?}``
(:class:`hub.api_models.ApiError`) with its HTTP status; docs/operations.md ("Server API") has the reference.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.api_models import (
    ApiError,
    ChannelPage,
    ClientPage,
    ClusterInfo,
    DisconnectRequest,
    DisconnectResult,
    HistoryPage,
    PresenceCount,
    PresencePage,
    PublishRequest,
    PublishResult,
)
from hub.broker import BrokerUnavailable
from hub.control import MAX_PAGE, Control
from hub.errors import Disconnect, HubError
from hub.http_auth import ADMIN_SCOPE, PUBLISH_SCOPE
from hub.http_edge import bounded_errors, json_body
from hub.protocol import ErrorCode
from hub.store import StoreUnavailable
from hub.types import Identity

log = logging.getLogger("hub.server_api")

API_PREFIX = "/api/v1"
MAX_DISCONNECT_BODY = 4096
IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,64}$"  # a socket mid's length; printable ASCII without spaces

STATUS: dict[str, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.BAD_CHANNEL: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.UNKNOWN_CHANNEL: 404,
    ErrorCode.UNKNOWN_TYPE: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.INVALID: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
}
"""The HTTP status of an error code; a plugin's own codes are 400."""

CODES: dict[int, str] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    409: ErrorCode.CONFLICT,
    413: "too_large",
    422: ErrorCode.INVALID,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}
"""The code of an HTTP error raised by the layers below (credentials, the body's size and JSON)."""


def _error(status: int, code: str, msg: str, details: list[Any] | None = None, headers: Any = None) -> Response:
    body = ApiError(code=code, msg=msg, details=details).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _invalid(errors: list[dict[str, Any]]) -> Response:
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    where = ".".join(str(part) for part in first["loc"])
    return _error(422, ErrorCode.INVALID, f"The request is invalid: {where}: {first['msg']}".strip(), errors)


class _CodedErrors(APIRoute):
    """Every failure of a server API route as :class:`ApiError`, in this one place: credentials (401/403), the
    request's parameters and body (413, 422), the hub's own refusals (:class:`hub.HubError` with its code),
    a backend outage (503), a plugin's bug (500, logged)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _invalid(bounded_errors(exc.errors()))
            except StarletteHTTPException as exc:
                if isinstance(exc.detail, list):  # a body that is not strict JSON (hub.http_edge)
                    return _invalid(bounded_errors(exc.detail))
                code = CODES.get(exc.status_code, "error")
                return _error(exc.status_code, code, str(exc.detail)[:500], headers=exc.headers)
            except HubError as exc:
                return _error(STATUS.get(exc.code, 400), exc.code, exc.msg, exc.details)
            except Disconnect as exc:  # a handler's "close this client": nobody to close, so a refusal
                return _error(400, "refused", exc.reason or "The handler refused this message.")
            except (BrokerUnavailable, StoreUnavailable) as exc:
                log.warning("server API %s: backend unavailable: %s", request.url.path, exc)
                return _error(503, ErrorCode.UNAVAILABLE, "A backend (broker or store) is unavailable; retry shortly.")
            except Exception:  # a bug in a handler (request boundary): logged, and the caller gets a sentence
                log.exception("server API %s %s failed", request.method, request.url.path)
                return _error(500, ErrorCode.INTERNAL, "Internal error; it has been logged.")

        return answer


# ---- credentials ------------------------------------------------------------------------------------------

# Declared for the OpenAPI page (its "Authorize" button); the checks below read the same headers themselves.
_API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="apiKey", auto_error=False, description="A key of HUB_API_KEYS.")
_BEARER = HTTPBearer(
    scheme_name="bearer",
    auto_error=False,
    description="A key of HUB_API_KEYS, or a JWT with the `publish` scope (publishing) or `admin` (everything).",
)


def _control(request: Request) -> Control:
    return cast(Control, request.app.state.hub.control)


def _caller(request: Request, authorization: str | None, x_api_key: str | None, scope: str) -> Identity:
    return cast(Identity, request.app.state.hub.authenticate_publisher(authorization, x_api_key, scope=scope))


def publisher(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Identity:
    return _caller(request, authorization, x_api_key, PUBLISH_SCOPE)


def administrator(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Identity:
    return _caller(request, authorization, x_api_key, ADMIN_SCOPE)


Publisher = Annotated[Identity, Depends(publisher)]
Administrator = Annotated[Identity, Depends(administrator)]
ChannelName = Annotated[str, Path(max_length=1024, description="`<namespace>:<room>`, e.g. `chat:lobby`.")]


def _failure(description: str) -> dict[str, Any]:
    return {"model": ApiError, "description": description}


router = APIRouter(
    prefix=API_PREFIX,
    tags=["server API"],
    route_class=_CodedErrors,
    dependencies=[Security(_API_KEY), Security(_BEARER)],
    responses={
        401: _failure("No credentials, an unknown API key, or a bad token (nothing else of the request is read)."),
        403: _failure("A valid token without the scope this endpoint needs."),
        422: _failure("A parameter or the body is invalid; `details` lists the fields."),
        503: _failure("The broker or the store is unavailable; retry."),
    },
)


# ---- publishing -------------------------------------------------------------------------------------------


@router.post(
    "/publish",
    response_model=PublishResult,
    # The body is read after the credentials, by the route itself (a body parameter is read before them).
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PublishRequest.model_json_schema()}},
        }
    },
    responses={
        400: _failure("A bad channel name, or a refusal of the handler (`code` is its own)."),
        403: _failure("A token without the publish (or admin) scope, or the channel's policies refuse the caller."),
        404: _failure("No plugin serves the channel's namespace, or the channel takes no message of this type."),
        413: _failure("A body larger than the hub's max_frame_bytes (a socket frame's limit)."),
        422: _failure("The message does not fit its type's model (`details`), or the body is not JSON."),
        503: _failure("A backend is unavailable, or a publish with this Idempotency-Key is still running; retry."),
    },
)
async def publish(
    request: Request,
    identity: Publisher,
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=IDEMPOTENCY_KEY,
            description="Makes a retry publish once (a socket pub's `mid`, 1..64 printable ASCII characters): "
            'within the dedup window a repeat runs nothing and answers `{"data": {"duplicate": true}}`, on any '
            "node.",
        ),
    ] = None,
) -> PublishResult:
    """Publish a message to any channel, as a socket's `pub` of it would be: validated by its type's model,
    allowed by the channel's policies and every `hub_authorize` hook, handled by the plugin's handler (which
    publishes the events subscribers see). The caller is the key's `api-key` identity or the token's user.
    The answer is the handler's reply data."""
    control = _control(request)
    body = await json_body(request, PublishRequest, max_bytes=request.app.state.hub.settings.max_frame_bytes)
    return await control.publish(identity, body.channel, body.type, body.data, idempotency_key)


# ---- channels ---------------------------------------------------------------------------------------------


@router.get("/channels", response_model=ChannelPage)
async def channels(
    request: Request,
    identity: Administrator,
    prefix: Annotated[str, Query(max_length=1024, description="Only channels whose name starts with this.")] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024, description="The `cursor` of the page before.")] = None,
) -> ChannelPage:
    """Channels with at least one subscribed connection on some node, in name order, with their subscriber
    counts summed over every node."""
    return await _control(request).channels(prefix, limit, cursor)


@router.get(
    "/channels/{channel}/presence",
    response_model=PresencePage,
    responses={400: _failure("A bad channel name, a channel without presence, or an unknown cursor.")},
)
async def presence(
    request: Request,
    identity: Administrator,
    channel: ChannelName,
    cursor: Annotated[str | None, Query(max_length=1024, description="The `cursor` of the page before.")] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000, description="At most HUB_PRESENCE_LIST_LIMIT.")] = None,
) -> PresencePage:
    """One page of a presence channel's members (in client id order), its member count, and the next cursor."""
    return await _control(request).presence(channel, cursor, limit)


@router.get(
    "/channels/{channel}/presence/count",
    response_model=PresenceCount,
    responses={400: _failure("A bad channel name, or a channel without presence.")},
)
async def presence_count(request: Request, identity: Administrator, channel: ChannelName) -> PresenceCount:
    """How many members a presence channel has, on every node."""
    return PresenceCount(channel=channel, count=await _control(request).presence_count(channel))


@router.get(
    "/channels/{channel}/history",
    response_model=HistoryPage,
    responses={400: _failure("A bad channel name, or a channel that keeps no history (not recoverable).")},
)
async def history(
    request: Request,
    identity: Administrator,
    channel: ChannelName,
    since: Annotated[int | None, Query(ge=0, description="Events after this offset (default: the latest).")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> HistoryPage:
    """A recoverable channel's kept events (the history recovery serves): the first `limit` after `since`, or the
    last `limit`; the stream's epoch and last offset."""
    return await _control(request).history(channel, since, limit)


# ---- connections ------------------------------------------------------------------------------------------


@router.get("/clients", response_model=ClientPage)
async def clients(
    request: Request,
    identity: Administrator,
    user: Annotated[str | None, Query(max_length=256, description="Only this user's connections.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> ClientPage:
    """Live connections on every node, oldest first, and how many match."""
    return await _control(request).clients(limit, user)


@router.post(
    "/disconnect",
    response_model=DisconnectResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DisconnectRequest.model_json_schema()}},
        }
    },
    responses={400: _failure("Neither a user nor a client."), 413: _failure("A body larger than 4 KiB.")},
)
async def disconnect(request: Request, identity: Administrator) -> DisconnectResult:
    """Close every connection of `user`, or the connection `client`, on every node, with `code` and `reason`.
    The SDK reconnects after 4011 (as after any code but 4001-4003): to keep a user out, stop accepting its
    tokens too."""
    body = await json_body(request, DisconnectRequest, max_bytes=MAX_DISCONNECT_BODY)
    result = await _control(request).disconnect(user=body.user, client=body.client, code=body.code, reason=body.reason)
    log.info(
        "server API: %s closed %d connection(s) of user=%r client=%r with %d",
        identity.user, result.closed, body.user, body.client, body.code,
    )  # fmt: skip
    return result


@router.get("/info", response_model=ClusterInfo)
async def info(request: Request, identity: Administrator) -> ClusterInfo:
    """The node that answers, its plugins and namespaces, and every live node of the cluster."""
    hub = request.app.state.hub
    return ClusterInfo(
        node=hub.node_id,
        version=_version(),
        plugins=list(hub.plugins.names),
        namespaces=sorted(hub.router.channels),
        nodes=await _control(request).nodes(),
    )


def _version() -> str:
    try:
        return importlib.metadata.version("hub-realtime")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
