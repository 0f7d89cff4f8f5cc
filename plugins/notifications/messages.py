"""notifications' models: the notification itself, what a publisher sends (socket, HTTP, Python), the inbound
read messages, the outbound events and the subscribe snapshot."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

BROADCAST_ROOM = "@all"  # notifications:@all carries "everyone" notifications; never a user's channel
MAX_TITLE = 200
MAX_BODY = 2000
MAX_URL = 2000
MAX_DATA_BYTES = 4096  # the data object, as compact JSON
MAX_USERS = 1000  # recipients of one publish
MAX_READ_IDS = 200  # ids of one notifications.read
MAX_TTL = 366 * 86400.0  # a hard bound; the max_ttl setting may lower it

Level = Literal["info", "success", "warning", "error"]
Audience = Literal["user", "everyone"]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE)]
Body = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_BODY)]
# Users are channel rooms (docs/protocol.md §11), so only those characters can ever have a channel.
UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@=+\-]{1,128}$")]
NotificationId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}-[0-9a-f]{8}$")]
_ID = re.compile(r"[0-9a-f]{12}-[0-9a-f]{8}")
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace, controls, and "\" (browsers read "/\x" as "//x")


def is_notification_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def check_url(value: str | None) -> str | None:
    """An absolute http(s) URL, or a path relative to the page (no other scheme, no "//host")."""
    if value is None:
        return None
    if not value or len(value) > MAX_URL:
        raise ValueError(f"url must be 1..{MAX_URL} characters")
    if _UNSAFE_URL.search(value):
        raise ValueError("url must not contain spaces, control characters or backslashes")
    parts = urlsplit(value)
    if parts.scheme:
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be http(s)://host/... or a relative path")
    elif value.startswith("//"):
        raise ValueError("url must not start with // (another host); use https://host/... instead")
    return value


def check_data(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(orjson.dumps(value)) > MAX_DATA_BYTES:
        raise ValueError(f"data must be at most {MAX_DATA_BYTES} bytes of JSON")
    return value


def _check_audience(users: list[str] | None, info: ValidationInfo, *, to_self_allowed: bool) -> list[str] | None:
    """Exactly one of users and everyone; users deduplicated and sorted. None with to_self_allowed: oneself."""
    everyone = info.data.get("everyone")
    if everyone is None:  # everyone itself failed; its own error says why
        return users
    if everyone and users is not None:
        raise ValueError("give either users or everyone: true, not both")
    if everyone or (users is None and to_self_allowed):
        return users
    if not users:
        raise ValueError("give 1 or more users, or everyone: true")
    unique = sorted(set(users))  # a user gets one copy; the order does not change the request
    if len(unique) > MAX_USERS:
        raise ValueError(f"at most {MAX_USERS} users per request")
    if BROADCAST_ROOM in unique:
        raise ValueError(f"{BROADCAST_ROOM!r} is reserved; use everyone: true")
    return unique


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Content(_Strict):
    """What a notification says, however it is published."""

    title: Title
    body: Body = ""
    url: str | None = None
    level: Level = "info"
    data: dict[str, Any] | None = Field(default=None, description=f"a small JSON object (<= {MAX_DATA_BYTES} B)")
    ttl: float | None = Field(
        default=None, gt=0, le=MAX_TTL, description="seconds until it expires; default: the default_ttl setting"
    )

    _url = field_validator("url")(check_url)
    _data = field_validator("data")(check_data)


class PublishRequest(Content):
    """``POST /api/notifications`` and the Python API: a notification for some users, or for everyone."""

    everyone: bool = False
    users: list[UserId] | None = Field(
        default=None,
        validate_default=True,
        max_length=MAX_USERS,
        description=f"1..{MAX_USERS} user ids (or everyone: true)",
    )

    @field_validator("users")
    @classmethod
    def _one_audience(cls, users: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _check_audience(users, info, to_self_allowed=False)


class SendNotification(PublishRequest):
    """``notifications.send`` from the demo form: without users (and without everyone) it goes to the sender."""

    @field_validator("users")
    @classmethod
    def _one_audience(cls, users: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _check_audience(users, info, to_self_allowed=True)


class ReadNotifications(_Strict):
    ids: list[NotificationId] = Field(min_length=1, max_length=MAX_READ_IDS)


class ReadAll(_Strict):
    up_to: NotificationId | None = Field(
        default=None, description="the newest id the client has seen (default: the newest stored one)"
    )


class Notification(BaseModel):
    """A notification as stored, as sent in ``notifications.new`` and in the snapshot (with ``read``)."""

    id: str = Field(description="sortable by time: 12 hex digits of milliseconds, '-', 8 random hex digits")
    title: str
    body: str = ""
    url: str | None = None
    level: Level = "info"
    data: dict[str, Any] | None = None
    ts: float = Field(description="server time of publishing, seconds since the epoch")
    expires_at: float = Field(description="seconds since the epoch; it is gone from snapshots after that")
    to: Audience
    read: bool = False


class MarkedRead(BaseModel):
    """``notifications.marked_read`` on ``notifications:<user>``, and the reply to read / read_all."""

    ids: list[str] = Field(description="notifications newly marked read")
    all: bool = Field(description="read_all: everything up to up_to is read")
    up_to: str | None = None
    unread: int = Field(description="the user's unread count after this change")


class PublishResult(BaseModel):
    """The reply of every publish path."""

    id: str
    to: Audience
    recipients: list[str] = Field(description="the users, sorted; empty for everyone")
    expires_at: float
    duplicate: bool = Field(default=False, description="an Idempotency-Key retry: delivered before, not again")
    notification: Notification


class InboxSnapshot(BaseModel):
    """What ``sub notifications:<user>`` returns: personal and broadcast notifications merged, newest first."""

    notifications: list[Notification]
    unread: int


class BroadcastSnapshot(BaseModel):
    """``sub notifications:@all``: nothing to show (the personal channel's snapshot has the broadcasts)."""

    broadcast: bool = True
