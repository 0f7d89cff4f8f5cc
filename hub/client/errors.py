"""``ClientError``: an ``err`` reply from the hub, or a failure of the client itself, with a code and a sentence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RETRYABLE_SUB_CODES = frozenset({"unavailable", "rate_limited", "internal", "timeout", "too_many_requests"})
"""Codes after which a refused ``sub`` is sent again (with backoff) while the socket stays open: hub.js's, and the
client's own bound on requests in flight."""


class ClientError(Exception):
    """A request failed: the hub's ``err`` frame (``invalid``, ``forbidden``, ``rate_limited``, … docs/protocol.md
    §12, or a plugin's own code), or the client's own code (``disconnected``, ``timeout``, ``closed``,
    ``offline_queue_full``, ``too_many_requests``, ``frame_too_large``, ``already_subscribed``, ``token``,
    ``bad_frame``; docs/client.md, "Python client").

    ``str(error)`` is ``"<code>: <sentence>"``; ``message`` is the sentence alone, for people.
    """

    def __init__(
        self,
        code: str,
        message: str,
        details: list[Any] | None = None,
        frame: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details
        self.frame = dict(frame) if frame is not None else None
        self.retrying = False
        """Only for a subscription's ``on_error``: the client sends the ``sub`` again (``unavailable``, …)."""
        self.revoked = False
        """Only for a subscription's ``on_error``: the hub ended a running subscription (an ``unsub`` frame)."""
        self.channel: str | None = None
        """The channel, for a subscription's errors (``on_error``, the ``revoked`` event)."""

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> ClientError:
        """The exception for an ``err`` frame, tolerant of a frame that lacks members."""
        code = frame.get("code")
        message = frame.get("msg")
        details = frame.get("details")
        return cls(
            code if isinstance(code, str) else "unknown",
            message if isinstance(message, str) else "The hub refused the request.",
            details if isinstance(details, list) else None,
            frame,
        )


class ConnectionLost(ClientError):
    """``disconnected``: the socket dropped while a request waited for its reply. A ``sub`` is then sent again on
    the next connection, and a publish that carries a ``mid`` goes back to the offline queue."""

    def __init__(self, message: str) -> None:
        super().__init__("disconnected", message)
