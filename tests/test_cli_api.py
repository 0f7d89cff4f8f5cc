"""The server API's commands (hub/cli_api.py) and ``hub notify`` against a real hub: what they print, and that every
failure is one line with exit 2 (usage) or 1 (refused, unreachable). Synchronous tests: each command runs its own
event loop, as from a shell."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterator

import orjson
import pytest
import typer
from typer.testing import CliRunner
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

import hub_realtime_plugins.chat
import hub_realtime_plugins.notifications
from hub.cli import cli
from hub.testing import HubServer
from hub_realtime_plugins.notifications.cli import register as register_notify

KEY = "cli-api-key-0123456789"

pytestmark = pytest.mark.usefixtures("clean_hub_environment")


@pytest.fixture
def server(hub_server: Callable[..., HubServer]) -> HubServer:
    plugins = {
        "chat": hub_realtime_plugins.chat.Chat,
        "notifications": hub_realtime_plugins.notifications.Notifications,
    }
    return hub_server(plugins=plugins, api_keys=[KEY])


@pytest.fixture
def sockets() -> Iterator[Callable[[HubServer, str, list[str]], ClientConnection]]:
    """``open_socket(server, user, channels)``: a synchronous WebSocket client subscribed to ``channels``."""
    stack = contextlib.ExitStack()

    def open_socket(server: HubServer, user: str, channels: list[str]) -> ClientConnection:
        ws = stack.enter_context(connect(f"{server.ws_url}?token={server.token(user)}", open_timeout=5))
        assert orjson.loads(ws.recv(timeout=5))["op"] == "hello"
        for n, channel in enumerate(channels):
            ws.send(orjson.dumps({"op": "sub", "ch": channel, "id": n}).decode())
            while (frame := orjson.loads(ws.recv(timeout=5)))["op"] != "ok":
                assert frame["op"] == "ev", frame
        return ws

    with stack:
        yield open_socket


def notifications_cli() -> typer.Typer:
    """``hub`` with the notifications plugin's command, as ``hub``'s main() adds it (plugin commands come from the
    installed plugins' ``hub_cli_commands``)."""
    app = typer.Typer()
    app.callback()(lambda: None)
    register_notify(app)
    return app


def hub(*args: str, input: str | None = None) -> tuple[int, str, str]:
    app = notifications_cli() if args[0] == "notify" else cli
    result = CliRunner().invoke(app, list(args), input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def api(server: HubServer, *args: str) -> tuple[int, str, str]:
    return hub(*args, "--server", server.url, "--api-key", KEY)


def test_publish_then_read_the_history(server: HubServer) -> None:
    code, out, _ = api(server, "publish", "chat:lobby", "chat.send", '{"text": "from the shell"}')
    assert code == 0, out
    posted = json.loads(out)
    assert (posted["text"], posted["author"]["user"]) == ("from the shell", "api-key")
    code, out, _ = api(server, "publish", "chat:lobby", "chat.send", "-", "--idempotency-key", "k1", "--json")
    assert code == 2  # stdin was empty: not JSON
    code, out, _ = hub(
        "publish", "chat:lobby", "chat.send", "-", "--server", server.url, "--api-key", KEY, input='{"text": "piped"}'
    )
    assert code == 0
    assert json.loads(out)["text"] == "piped"
    code, out, err = api(server, "history", "chat:lobby", "--since", "0")
    assert code == 0
    lines = out.splitlines()
    assert [line.split("  ")[:2] for line in lines] == [["1", "chat.posted"], ["2", "chat.posted"]]
    assert json.loads(lines[1].split("  ", 2)[2])["text"] == "piped"
    assert "last offset 2" in err


def test_an_idempotency_key_publishes_once(server: HubServer) -> None:
    args = ("publish", "chat:lobby", "chat.send", '{"text": "once"}', "--idempotency-key", "deploy-7")
    assert api(server, *args)[0] == 0
    code, out, _ = api(server, *args)
    assert (code, out.strip()) == (0, "duplicate: published before with this idempotency key, not again")
    code, out, _ = api(server, *args, "--json")
    assert json.loads(out) == {"data": {"duplicate": True}, "replies": []}


def read_until_closed(ws: ClientConnection) -> None:
    while True:
        ws.recv(timeout=5)


def test_channels_presence_clients_nodes_and_disconnect(
    server: HubServer, sockets: Callable[..., ClientConnection]
) -> None:
    alice = sockets(server, "alice", ["chat:a", "chat:b"])
    sockets(server, "bob", ["chat:a"])
    code, out, _ = api(server, "channels")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["CHANNEL", "SUBSCRIBERS", "NODES"],
        ["chat:a", "2", "1"],
        ["chat:b", "1", "1"],
    ]
    code, out, err = api(server, "channels", "--limit", "1")
    assert (out.splitlines()[1].split()[0], err.strip()) == ("chat:a", "more: --cursor chat:a")
    code, out, _ = api(server, "presence", "chat:a")
    assert sorted(line.split()[1] for line in out.splitlines()[1:-1]) == ["alice", "bob"]
    assert out.splitlines()[-1] == "2 member(s)"
    code, out, _ = api(server, "clients", "--user", "alice", "--json")
    [client] = json.loads(out)["clients"]
    assert client["channels"] == ["chat:a", "chat:b"]
    code, out, _ = api(server, "nodes")
    assert out.splitlines()[0].split() == ["NODE", "HOST", "PID", "UP", "CONNECTIONS", "SUBSCRIPTIONS", "CHANNELS"]
    assert out.splitlines()[1].split()[4:] == ["2", "3", "2"]
    code, out, _ = api(server, "disconnect", "--client", client["client"], "--reason", "Bye from the shell.")
    assert (code, out.strip()) == (0, "closed 1 connection(s)")
    with pytest.raises(ConnectionClosed) as closed:  # the server's close frame
        read_until_closed(alice)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4011, "Bye from the shell.")


def test_failures_are_one_line(server: HubServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{sock.getsockname()[1]}"
    nope = ("--server", server.url, "--api-key", "nope")
    cases = [
        (("publish", "chat:lobby", "chat.send", "{", "--server", server.url, "--api-key", KEY), 2, "DATA is not JSON"),
        (("publish", "chat:lobby", "chat.send", "{}", "--server", server.url), 2, "give --api-key"),
        (("publish", "chat:lobby", "chat.send", "{}", "--server", "ftp://x", "--api-key", KEY), 2, "--server must be"),
        (("disconnect", "--server", server.url, "--api-key", KEY), 2, "give --user or --client"),
        (("publish", "chat:lobby", "chat.send", '{"text": 1}', "--server", server.url, "--api-key", KEY), 1, "text:"),
        (("publish", "chat:lobby", "chat.send", "{}", *nope), 1, "Unknown API key"),
        (("channels", "--server", server.url, "--token", server.token("u", scopes=("publish",))), 1, "admin"),
        (("history", "chat:lobby", "--server", nobody, "--api-key", KEY, "--timeout", "2"), 1, "Cannot reach the hub"),
        (("presence", "nowhere:x", "--server", server.url, "--api-key", KEY), 1, "unknown_channel"),
    ]
    for args, status, text in cases:
        code, out, err = hub(*args)
        assert code == status, (args, out, err)
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("error: "), err
        assert text in err, (args, err)
        assert "Traceback" not in out + err


def test_notify_sends_a_notification(server: HubServer, sockets: Callable[..., ClientConnection]) -> None:
    alice = sockets(server, "alice", ["notifications:alice"])
    code, out, err = hub(
        "notify", "--user", "alice", "--title", "Deploy finished", "--server", server.url, "--api-key", KEY
    )
    assert code == 0, err
    assert out.startswith("sent ")
    assert out.strip().endswith("to alice")
    while (event := orjson.loads(alice.recv(timeout=5)))["op"] != "ev":
        pass  # the hub's pings
    assert (event["type"], event["data"]["title"]) == ("notifications.new", "Deploy finished")
    code, out, err = hub("notify", "--everyone", "--title", "Hi", "--hub", server.url, "--api-key", KEY)  # old name
    assert code == 0, err
