"""The two kinds of failure a handler can signal: a reply error that keeps the socket, and a disconnect."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hub.types import JSON

_CODE = re.compile(r"[a-z][a-z0-9_]{1,31}")


class HubError(Exception):
    """A request failed; the client gets an ``err`` frame with this code and sentence, and the socket stays open.

    Core codes are listed in docs/protocol.md; plugins may use them or add their own lower_snake_case codes.
    """

    def __init__(self, code: str, msg: str, details: Sequence[JSON] | None = None) -> None:
        if not _CODE.fullmatch(code):
            raise ValueError(f"error code must be lower_snake_case, got {code!r}")
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = list(details) if details is not None else None


class Disconnect(Exception):
    """Close the connection with a documented close code (4000-4499 core, 4500-4999 plugins)."""

    def __init__(self, code: int, reason: str) -> None:
        if not (code == 1000 or code == 1008 or code == 1009 or code == 1011 or 4000 <= code <= 4999):
            raise ValueError(f"close code {code} is outside the documented ranges")
        super().__init__(reason)
        self.code = code
        # RFC 6455 caps a close reason at 123 bytes.
        self.reason = reason.encode()[:123].decode(errors="ignore")
