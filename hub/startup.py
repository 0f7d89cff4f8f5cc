"""What stops ``hub serve`` from starting, found early and told in one line: the listening sockets are bound
before anything else runs (a port in use is reported before anything says "started"), and an application
start-up that fails on an outage (Redis down, a store that cannot open) is reduced to its cause."""

from __future__ import annotations

import errno
import logging
import socket
import traceback
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from hub.broker import BrokerUnavailable
from hub.redis_client import REDIS_ERRORS
from hub.store.protocol import StoreUnavailable

OUTAGES: tuple[type[BaseException], ...] = (BrokerUnavailable, StoreUnavailable, *REDIS_ERRORS)
"""Failures of the world outside the hub: one line, no traceback. Anything else during start-up is a bug (of the
hub or a plugin), and keeps its traceback."""

log = logging.getLogger("uvicorn.error")


class StartupError(Exception):
    """The hub cannot start: one line saying why and what to do. ``setting`` names the setting at fault, if one
    is (``port``, ``host``), so the command line can say where it came from."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_error(host: str, port: int, exc: OSError) -> StartupError:
    address = _address(host, port)
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"{address} is already in use: stop what listens there, or choose another port", "port")
    if exc.errno == errno.EACCES:
        return StartupError(
            f"not allowed to listen on {address}: ports below 1024 need privileges; choose 1024 or above", "port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"cannot listen on {host}: no interface of this machine has that address", "host")
    return StartupError(f"cannot listen on {address}: {exc.strerror or exc}", "host")


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening-ready sockets for every address ``host`` resolves to (one for ``127.0.0.1``; IPv4 and IPv6 for
    ``localhost``), as asyncio's ``create_server`` would bind them; with port 0, the first address only. Raises
    :class:`StartupError` if any cannot be bound."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host!r}: the name does not resolve ({exc.strerror})", "host") from None
    except (UnicodeError, ValueError) as exc:
        raise StartupError(f"cannot listen on {host!r}: not a host name or address ({exc})", "host") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise bind_error(str(address[0]), port, exc) from None
            sock.set_inheritable(True)  # for the worker processes of --workers
            if port == 0:
                break
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def log_listening(sockets: list[socket.socket], *, tls: bool = False) -> None:
    """uvicorn's "running on" line, which it leaves out when it is handed its sockets."""
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        log.info(
            "Uvicorn running on %s://%s (Press CTRL+C to quit)", "https" if tls else "http", _address(str(host), port)
        )


class StartupGuard:
    """The app, with a failed start-up told in one line: an outage (:data:`OUTAGES`) as its message, kept in
    :attr:`failure` for ``hub serve`` to report, instead of the traceback Starlette sends uvicorn to log. Any other
    failure is logged with its traceback, as uvicorn would."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.failure: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # app.state and the rest, for whoever looks at the served app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[str] = []

        async def hold_failure(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message.get("message", ""))
                message = {**message, "message": ""}
            await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except BaseException as exc:
            outage = _outage(exc)
            if outage is not None:
                self.failure = str(outage) or type(outage).__name__
            elif held:  # not an outage: the traceback is the way to the bug
                log.error("".join(traceback.format_exception(exc)).rstrip())
                self.failure = f"the application failed to start ({type(exc).__name__}: {exc}); see the traceback above"
            raise


def _outage(exc: BaseException) -> BaseException | None:
    """The outage behind ``exc`` (itself, or what every exception of a group comes down to), if it is one."""
    if isinstance(exc, OUTAGES):
        return exc
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        inner = [_outage(item) for item in exc.exceptions]
        if all(item is not None for item in inner):
            return inner[0]
    return None
