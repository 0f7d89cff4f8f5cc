"""What every HTTP route of the app gets: JSON request bodies parsed strictly (orjson: no NaN, no Infinity, no
number beyond a double), and error answers that never echo a client's input back or grow with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Model = TypeVar("Model", bound=BaseModel)

MAX_ERRORS = 20  # entries of a 422's detail list; the rest are left out
MAX_TEXT = 200  # characters of an error message
MAX_LOC = 64  # characters of each part of an error's loc (an unknown field's name is the client's)
MAX_DETAIL = 500  # characters of an HTTPException's detail text


def invalid_json(error: orjson.JSONDecodeError) -> HTTPException:
    """A 422 shaped like FastAPI's own: ``{"detail": [{"type": "json_invalid", "loc": ["body", pos], "msg"}]}``.
    orjson's message names the problem and where, never the input."""
    msg = f"Invalid JSON ({error.msg}); NaN, Infinity and numbers beyond a double are not JSON"
    return HTTPException(422, [{"type": "json_invalid", "loc": ["body", error.pos], "msg": msg}])


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_json(exc) from None


def too_large(max_bytes: int) -> HTTPException:
    return HTTPException(413, f"The request body is larger than {max_bytes} bytes.")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, at most ``max_bytes``: 413 for a ``Content-Length`` past it before anything is read,
    or as soon as a body without one (chunked) passes it. (Under ``hub serve`` the HTTP edge also refuses bodies
    past ``max_body_bytes``; this bound holds under any ASGI server, and may be tighter.)"""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise too_large(max_bytes)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        parts.append(chunk)
    return b"".join(parts)


async def json_body(request: Request, model: type[Model], *, max_bytes: int | None = None) -> Model:
    """The request's body as ``model``, for a route that takes the ``Request`` and reads the body itself, after
    checking credentials from the headers (a body parameter would make FastAPI read and parse the body first).
    Strict JSON, whatever the ``Content-Type``; 422 for invalid JSON or fields, like FastAPI's own body errors;
    with ``max_bytes``, 413 for a larger body (:func:`read_body`)."""
    body = await (request.body() if max_bytes is None else read_body(request, max_bytes))
    value = parse_json(body)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in errors]) from None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
    return True  # no Content-Type: FastAPI may still read it as JSON


class StrictJSONBodies:
    """Checks every JSON request body with orjson once the app has read it whole, before the app gets its last
    part: FastAPI parses body parameters with Python's json, which takes NaN, Infinity and 1e400 (as inf). A body
    that is not strict JSON makes the app's read raise a 422 (an HTTPException the app's handlers answer), so a
    route that reads its body after checking credentials still answers 401 first."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        parts: list[bytes] = []

        async def checked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body = b"".join(parts)
                    parts.clear()
                    if body.strip():
                        parse_json(body)
            return message

        await self.app(scope, checked_receive, send)


def _bounded(text: object, limit: int = MAX_TEXT) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors without ``input`` and ``ctx`` (a client's own data, up to the whole body) and bounded: at
    most ``MAX_ERRORS`` entries, each message cut to ``MAX_TEXT`` characters and each part of its loc to
    ``MAX_LOC``."""
    return [
        {
            "type": _bounded(error.get("type", "value_error")),
            "loc": [part if isinstance(part, int) else _bounded(part, MAX_LOC) for part in error.get("loc", ())][:8],
            "msg": _bounded(error.get("msg", "")),
        }
        for error in errors[:MAX_ERRORS]
        if isinstance(error, dict)
    ]


async def validation_failed(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, its errors bounded (:func:`bounded_errors`)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": bounded_errors(exc.errors())}, status_code=422)


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer, with a text detail cut to ``MAX_DETAIL`` characters (an auth error may quote a token)."""
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.detail, str) and len(exc.detail) > MAX_DETAIL:
        exc = StarletteHTTPException(exc.status_code, exc.detail[: MAX_DETAIL - 1] + "…", exc.headers)
    return await http_exception_handler(request, exc)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client went away (or the edge refused its body) while the app read it: nobody is left to answer,
    and it is no fault of the server, so no traceback."""
    return Response(status_code=400)


def install_http_edge(app: FastAPI) -> None:
    """Strict JSON bodies and bounded, input-free error answers, for every route of ``app``."""
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_middleware(StrictJSONBodies)
