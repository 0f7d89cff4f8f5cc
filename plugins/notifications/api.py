"""``POST /api/notifications``: server-to-server publishing with an API key or a JWT with the publish scope."""

# No "from __future__ import annotations" here: FastAPI reads the route's annotations at runtime, and the
# Depends() of a function local to make_router cannot be found from a string.
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError

from hub import BrokerUnavailable, Hub, Identity, StoreUnavailable, json_body
from hub_realtime_plugins.notifications.idempotency import IdempotencyConflict
from hub_realtime_plugins.notifications.messages import PublishRequest, PublishResult
from hub_realtime_plugins.notifications.notifier import InvalidRequest, Notifier

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces


def make_router(hub: Hub, notifier: Notifier) -> APIRouter:
    """The route of one plugin object: its hub checks the credentials, its notifier publishes."""
    router = APIRouter(prefix="/api", tags=["notifications"])

    def authorize_publisher(
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> Identity:
        """A dependency, so a caller without valid credentials gets 401/403 before its payload is looked at."""
        return hub.authenticate_publisher(authorization, x_api_key)

    @router.post(
        "/notifications",
        status_code=201,
        # The route reads its body itself, after the credentials (a body parameter is read before them); the
        # schema is still the one of PublishRequest.
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PublishRequest.model_json_schema()}},
            }
        },
        responses={
            200: {"description": "An Idempotency-Key retry: delivered before, not again (duplicate: true)."},
            401: {"description": "No credentials, or an unknown API key or bad token (the body is not read)."},
            403: {"description": "A valid token without the publish scope."},
            409: {"description": "A request with this Idempotency-Key is still running; retry."},
            413: {"description": "A body larger than the hub's max_body_bytes setting."},
            422: {
                "description": "Invalid JSON (NaN and Infinity included) or fields, or an Idempotency-Key reused for "
                "another request."
            },
            503: {"description": "The store or the broker is unavailable; retry."},
        },
    )
    async def publish_notification(
        http_request: Request,
        response: Response,
        publisher: Annotated[Identity, Depends(authorize_publisher)],
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> PublishResult:
        """Send a notification to ``users`` (1..1000 ids) or to ``everyone``; stored for those offline."""
        if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("header", "idempotency-key"),
                        "msg": "Idempotency-Key must be 1..255 printable ASCII characters without spaces",
                        "input": idempotency_key,
                    }
                ]
            )
        request = await json_body(http_request, PublishRequest)
        try:
            result = await notifier.publish(request, idempotency_key=idempotency_key, publisher=publisher.user)
        except InvalidRequest as exc:
            raise RequestValidationError(
                [{"type": "value_error", "loc": ("body", exc.field), "msg": exc.msg}]
            ) from None
        except IdempotencyConflict as exc:
            if exc.reason == "mismatch":
                raise RequestValidationError(
                    [{"type": "value_error", "loc": ("header", "idempotency-key"), "msg": exc.msg, "input": None}]
                ) from None
            raise HTTPException(409, exc.msg) from None
        except (StoreUnavailable, BrokerUnavailable):
            raise HTTPException(503, "A backend (store or broker) is unavailable; retry shortly.") from None
        if result.duplicate:
            response.status_code = 200
        return result

    return router
