"""Close reasons fit the 123 bytes a WebSocket close frame has room for. Issue 15: a longer one (PyJWT quoting a
forged token's long ``crit`` header, a /yjs user's 64-letter non-ASCII name) made the WebSocket layer raise, so
the client saw 1006 instead of the close code and the log got a traceback. ``hub.close_reason`` cuts every
reason on a UTF-8 boundary; these tests check it alone and at each place the hub and docedit close a socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import jwt
import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st
from websockets.typing import Subprotocol

from hub import close_reason
from hub.protocol import MAX_CLOSE_REASON_BYTES
from hub.testing import TEST_SECRET, HubClient, HubServer
from hub_realtime_plugins.docedit import Docedit, DoceditSettings

# ---- the helper ----------------------------------------------------------------------------------------------


def test_a_reason_that_fits_is_unchanged():
    assert MAX_CLOSE_REASON_BYTES == 123
    assert close_reason("") == ""
    assert close_reason("Token expired.") == "Token expired."
    exactly = "x" * 123
    assert close_reason(exactly) == exactly
    assert close_reason("é" * 61 + "x") == "é" * 61 + "x"  # 123 bytes in 62 characters


def test_a_long_reason_is_cut_with_an_ellipsis():
    cut = close_reason("x" * 124)
    assert cut == "x" * 120 + "…"
    assert len(cut.encode()) == 123


@pytest.mark.parametrize("char", ["é", "€", "😀"], ids=["2-byte", "3-byte", "4-byte"])
def test_a_cut_never_splits_a_character(char):
    cut = close_reason(char * 100)
    encoded = cut.encode()  # valid UTF-8, or this raises
    assert len(encoded) <= 123
    assert cut.endswith("…")
    assert set(cut[:-1]) == {char}
    assert len(encoded) > 123 - len(char.encode()) - len("…".encode())  # as much as fits is kept


def test_a_lone_surrogate_cannot_break_the_close():
    # JSON may carry "\ud800" (a token's name claim); it cannot be encoded as UTF-8, so it becomes "?".
    assert close_reason("bad \ud800 name") == "bad ? name"


@given(st.text(max_size=400))
def test_any_text_becomes_a_valid_reason_of_at_most_123_bytes(text):
    cut = close_reason(text)
    encoded = cut.encode()
    assert len(encoded) <= MAX_CLOSE_REASON_BYTES
    safe = text.encode("utf-8", "replace").decode()
    if len(safe.encode()) <= MAX_CLOSE_REASON_BYTES:
        assert cut == safe
    else:
        assert cut.endswith("…")
        assert safe.startswith(cut[:-1])


# ---- on real sockets -----------------------------------------------------------------------------------------


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, f"{record.name}: {record.getMessage()}"
        assert record.levelno < logging.ERROR, f"{record.name}: {record.getMessage()}"
    assert "Traceback" not in caplog.text


def long_crit_token(extension: str) -> str:
    """A forged token whose header lists an unsupported critical extension; PyJWT's error message quotes it."""
    claims = {"sub": "mallory", "exp": int(time.time()) + 60}
    return jwt.encode(claims, "not-the-hubs-secret-0123456789abcdef", headers={"crit": [extension]})


async def closed_on_connect(url: str, subprotocols: list[str] | None = None) -> tuple[int | None, str]:
    offered = [Subprotocol(p) for p in subprotocols] if subprotocols else None
    async with websockets.connect(url, subprotocols=offered) as ws:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    return ws.close_code, ws.close_reason or ""


def check_cut(reason: str, start: str) -> None:
    assert reason.startswith(start)
    assert reason.endswith("…")
    assert len(reason.encode()) <= 123


@pytest.mark.parametrize("extension", ["x" * 200, "é" * 200], ids=["ascii", "non-ascii"])
async def test_a_forged_token_with_a_long_crit_header_is_closed_4001_with_a_cut_reason(
    hub_server, server_logs, extension
):
    server = hub_server()
    logs = server_logs()
    token = long_crit_token(extension)
    code, reason = await closed_on_connect(server.ws_url, ["hub.v1", "bearer." + token])
    assert code == 4001
    check_cut(reason, "Invalid token: Unsupported critical extension: " + extension[:10])
    assert_no_traceback(logs)


async def test_the_same_token_in_an_auth_frame_is_closed_4001_with_a_cut_reason(hub_server, server_logs):
    server = hub_server()
    logs = server_logs()
    client = await HubClient.connect(server.ws_url)
    await client.send_raw(f'{{"op":"auth","token":"{long_crit_token("€" * 100)}"}}')
    code, reason = await client.closed()
    assert code == 4001
    check_cut(reason, "Invalid token: Unsupported critical extension: €€€")
    assert_no_traceback(logs)


@pytest.fixture
def docedit_server(hub_server) -> HubServer:
    server: HubServer = hub_server(plugins={"docedit": lambda hub: Docedit(hub, settings=DoceditSettings())})
    return server


async def test_a_yjs_user_with_a_long_non_ascii_name_is_refused_4003_with_a_cut_reason(
    docedit_server, hub_client, server_logs
):
    logs = server_logs()
    owner = await hub_client(docedit_server, user="olga")
    await owner.sub("docedit:private")
    await owner.pub("docedit:private", "docedit.share", {"editors": [], "readers": [], "public": "none"})
    name = "Ж" * 64  # the longest display name a token may set, in two-byte letters
    stranger = jwt.encode({"sub": "zhenya", "name": name, "exp": int(time.time()) + 60}, TEST_SECRET)
    code, reason = await closed_on_connect(f"ws://127.0.0.1:{docedit_server.port}/yjs/private?token={stranger}")
    assert code == 4003  # the reason named the user once; whatever it says now, it fits
    assert len(reason.encode()) <= 123
    assert_no_traceback(logs)


async def test_a_yjs_socket_with_a_long_non_ascii_crit_token_is_closed_4001_with_a_cut_reason(
    docedit_server, server_logs
):
    logs = server_logs()
    token = long_crit_token("ü" * 200)
    code, reason = await closed_on_connect(f"ws://127.0.0.1:{docedit_server.port}/yjs/anydoc?token={token}")
    assert code == 4001
    check_cut(reason, "Invalid token: Unsupported critical extension: üüü")
    assert_no_traceback(logs)
