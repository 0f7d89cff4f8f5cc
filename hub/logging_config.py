"""The hub's log output on stderr: uvicorn's text format, or one JSON object per line (``HUB_LOG_FORMAT=json``) for
uvicorn's loggers and the hub's alike; and the redaction of query strings and bearer tokens both go through."""

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
