"""The hub's log output on stderr: uvicorn's text format, or one JSON object per line (``HUB_LOG_FORMAT=json``) for
uvicorn's loggers and the hub's alike; and the redaction of query strings and bearer tokens both go through; and the
limit on the warnings a client can make uvicorn log."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Literal

LogFormat = Literal["text", "json"]

_QUERY = re.compile(r"\?[^\s\"']+")  # a "?" ending a sentence is no query string
_BEARER = re.compile(r"(bearer[.\s])[^\s,\"']+", re.IGNORECASE)
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
    "taskName",
}


def redact(text: str) -> str:
    """Drop query strings and bearer tokens (subprotocol ``bearer.<jwt>``, ``Authorization: Bearer``)."""
    return _BEARER.sub(r"\1…", _QUERY.sub("?…", text))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
    record's extra fields (``logger.info(..., extra={"client": ...})``) and ``exception`` (the traceback, as
    one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(log_format: LogFormat, text_format: str = "%(levelprefix)s %(message)s") -> logging.Formatter:
    """The formatter of a handler: uvicorn's coloured-when-a-terminal text, or JSON."""
    if log_format == "json":
        return JsonFormatter()
    from uvicorn.logging import DefaultFormatter

    return DefaultFormatter(text_format)


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for the format: None keeps uvicorn's own (text); JSON replaces both of its
    formatters (its access log is off under the hub, which has its own: ``hub.access``)."""
    if log_format != "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = json.loads(json.dumps(LOGGING_CONFIG))
    for name in config["formatters"]:
        config["formatters"][name] = {"()": "hub.logging_config.JsonFormatter"}
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # every line on one stream, like the hub's
    return config


class RedactQueryFilter(logging.Filter):
    """uvicorn logs '"WebSocket /ws?token=..." [accepted]', and at debug level the websockets library logs
    every handshake header; strip query strings and bearer tokens from every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: redact(v) if isinstance(v, str) else v for key, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


class ClientWarningLimit(logging.Filter):
    """uvicorn logs one warning per malformed request ("Invalid HTTP request received.", "Unsupported upgrade
    request."), so any client could flood the log with them. At most one of each per ``interval`` seconds goes
    through; the next one that does says how many were left out."""

    MESSAGES = ("Invalid HTTP request received.", "Unsupported upgrade request.")

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}  # message -> when one last went through
        self._dropped: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        if message not in self.MESSAGES:
            return True
        now = time.monotonic()
        last = self._last.get(message)
        if last is not None and now - last < self.interval:
            self._dropped[message] = self._dropped.get(message, 0) + 1
            return False
        self._last[message] = now
        dropped = self._dropped.pop(message, 0)
        if dropped:
            record.msg = f"{message} ({dropped} more left out of the log since the last one)"
        return True


def configure_hub_logging(level: str, log_format: LogFormat = "text") -> None:
    """Send the hub's own loggers (hub, hub.access, ...) to stderr in uvicorn's format, or as JSON lines."""
    logger = logging.getLogger("hub")
    handler = next((handler for handler in logger.handlers if getattr(handler, "_hub", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._hub = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    handler.setFormatter(formatter(log_format, "%(levelprefix)s %(name)s: %(message)s"))
    logger.setLevel(level.upper())
    logger.propagate = False


def install_log_redaction() -> None:
    """On the loggers (records they create) and on their handlers (records their children pass up)."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "hub"):
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, RedactQueryFilter) for f in target.filters):
                target.addFilter(RedactQueryFilter())
    errors = logging.getLogger("uvicorn.error")  # where uvicorn's protocols log a client's malformed request
    if not any(isinstance(f, ClientWarningLimit) for f in errors.filters):
        errors.addFilter(ClientWarningLimit())
