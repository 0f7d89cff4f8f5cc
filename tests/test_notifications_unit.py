"""notifications' pure logic: payload validation (audience, url, data), ids, and read state of an inbox."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub_realtime_plugins.notifications.messages import Notification, PublishRequest, SendNotification, check_url
from hub_realtime_plugins.notifications.store import Inbox, new_notification_id


def error_fields(**payload: object) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as failed:
        PublishRequest.model_validate(payload)
    return [tuple(error["loc"]) for error in failed.value.errors()]


def test_exactly_one_audience_and_users_are_deduplicated() -> None:
    assert PublishRequest(title="t", users=["b", "a", "b"]).users == ["a", "b"]
    assert PublishRequest(title="t", everyone=True).users is None
    assert error_fields(title="t") == [("users",)]
    assert error_fields(title="t", users=[]) == [("users",)]
    assert error_fields(title="t", users=["a"], everyone=True) == [("users",)]
    assert error_fields(title="t", users=["@all"]) == [("users",)]
    assert error_fields(title="t", users=["a b"]) == [("users", 0)]
    assert error_fields(title="t", everyone="maybe") == [("everyone",)]
    # the socket form: no audience means oneself
    assert SendNotification(title="t").users is None
    with pytest.raises(ValidationError):
        SendNotification(title="t", users=["a"], everyone=True)


def test_fields_are_bounded() -> None:
    assert PublishRequest(title="  spaced  ", everyone=True).title == "spaced"
    assert error_fields(title=" ", everyone=True) == [("title",)]
    assert error_fields(title="x" * 201, everyone=True) == [("title",)]
    assert error_fields(title="t", body="x" * 2001, everyone=True) == [("body",)]
    assert error_fields(title="t", level="fatal", everyone=True) == [("level",)]
    assert error_fields(title="t", ttl=-1, everyone=True) == [("ttl",)]
    assert error_fields(title="t", data={"k": "v" * 5000}, everyone=True) == [("data",)]
    assert error_fields(title="t", data=[1, 2], everyone=True) == [("data",)]


@pytest.mark.parametrize(
    "url", ["https://example.com/a?b#c", "http://localhost:8000/", "/orders/1", "orders/1", "?tab=2", "#top"]
)
def test_urls_that_are_allowed(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "JaVaScRiPt:x", "data:text/html,x", "//evil.example", "/\\evil.example", "https://",
     "ftp://host/x", "/a b", "/a\nb", ""],
)  # fmt: skip
def test_urls_that_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="url"):
        check_url(url)


def test_ids_sort_by_time_and_never_repeat() -> None:
    ids = [new_notification_id(1_700_000_000.0) for _ in range(100)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 100
    assert new_notification_id(1_800_000_000.0) > ids[-1]


def notification(notification_id: str) -> Notification:
    return Notification(id=notification_id, title="t", ts=0, expires_at=1, to="user")


def test_inbox_read_state_from_watermark_and_marks() -> None:
    ids = ["000000000001-00000000", "000000000002-00000000", "000000000003-00000000", "000000000004-00000000"]
    inbox = Inbox(tuple(notification(i) for i in reversed(ids)), watermark=ids[1], marks=frozenset({ids[3]}))
    assert [inbox.is_read(i) for i in ids] == [True, True, False, True]
    assert inbox.unread == 1
    assert inbox.newest_id == ids[3]
    assert [n.read for n in inbox.with_read_flags(limit=3)] == [True, False, True]
    assert Inbox((), watermark="", marks=frozenset()).unread == 0
