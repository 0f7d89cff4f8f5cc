"""cli.py: ``hub plugins``, ``hub serve`` refusing unknown plugins before serving, and ``hub token``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hub.server
from hub.auth import Authenticator
from hub.cli import cli

SECRET = "cli-test-secret-0123456789abcdefghij"  # 32+ bytes: PyJWT's recommended HS256 key length
SHORTEST_SECRET = "0123456789abcdef0123456789abcdef"  # 32 bytes: the shortest secret Authenticator accepts


pytestmark = pytest.mark.usefixtures("clean_hub_environment")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Replaces the real server: a test that reaches it records the call instead of binding a port."""
    calls: list[object] = []

    def record(settings: object, *, workers: int = 1, **options: object) -> None:
        calls.append(settings)

    monkeypatch.setattr(hub.server, "serve", record)
    return calls


def test_workers_without_redis_is_a_one_line_error(served: list[object]) -> None:
    result = CliRunner().invoke(cli, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers > 1 needs a shared broker" in result.output
    assert served == []


@pytest.mark.parametrize(
    ("arguments", "env", "message"),
    [
        (["--secret", "short"], {}, "the JWT secret must be at least 32 bytes long"),
        ([], {"HUB_JWT_ALGORITHMS": "RS256"}, "set HUB_JWT_PUBLIC_KEY or HUB_JWKS_URL"),
    ],
)
def test_unusable_token_settings_are_a_one_line_error(
    served: list[object], tmp_path: Path, arguments: list[str], env: dict[str, str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path), *arguments], env=env)
    assert result.exit_code == 2
    assert "the token settings are not usable" in result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert served == []


def test_redis_flag_moves_broker_and_store(served: list[object], redis_url: str) -> None:
    result = CliRunner().invoke(cli, ["serve", "--redis", redis_url])  # reachable: serve checks before it starts
    assert result.exit_code == 0, result.output
    [settings] = served
    assert settings.resolved_broker_url() == redis_url  # type: ignore[attr-defined]
    assert settings.resolved_store_url() == redis_url  # type: ignore[attr-defined]


def test_plugins_lists_channels_and_message_types() -> None:
    import json

    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    plugins = {plugin["name"]: plugin for plugin in json.loads(result.stdout)["plugins"]}
    [chat] = plugins["chat"]["channels"]
    assert chat["channel"] == "chat:*"
    assert "chat.send" in chat["messages"]
    assert "chat.posted" in chat["events"]
    assert "chat.joined" in chat["events"]  # presence events are listed too
    assert plugins["chat"]["broken"] is None


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_plugins_wraps_at_the_terminal_width(columns: int) -> None:
    result = CliRunner().invoke(cli, ["plugins"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    at = lines.index("chat  chat:*")
    end = next(index for index in range(at + 1, len(lines)) if not lines[index].startswith(" "))
    block = lines[at + 1 : end]  # the chat channel's lines, wrapped
    assert block[0].startswith("  in:  chat.delete, chat.edit")
    [out] = [index for index, line in enumerate(block) if line.startswith("  out: ")]
    assert "chat.send" in " ".join(block[:out])
    assert "chat.joined" in " ".join(block[out:])
    assert all(line.startswith("       ") for line in block[1:out] + block[out + 1 :])  # continuation lines


def test_serve_refuses_an_unknown_plugin_before_serving(served: list[object]) -> None:
    result = CliRunner().invoke(cli, ["serve", "--plugins", "chat,nope"])
    assert result.exit_code == 2
    assert served == []
    error = result.stderr.strip()
    assert "\n" not in error
    assert error.startswith("error:")
    assert "'nope'" in error
    assert "chat" in error
    assert result.stdout == ""


def test_serve_with_known_plugins_reaches_the_server(served: list[object]) -> None:
    result = CliRunner().invoke(cli, ["serve", "--plugins", " chat ,", "--port", "0", "--no-anonymous"])
    assert result.exit_code == 0, result.output
    [settings] = served
    assert settings.plugins == ["chat"]  # type: ignore[attr-defined]
    assert settings.port == 0  # type: ignore[attr-defined]
    assert settings.anonymous is False  # type: ignore[attr-defined]


@pytest.mark.parametrize("secret", [SECRET, SHORTEST_SECRET])
def test_token_prints_a_verifiable_jwt(secret: str) -> None:
    before = time.time()
    result = CliRunner().invoke(cli, ["token", "--user", "alice", "--secret", secret, "--ttl", "120"])
    assert result.exit_code == 0, repr(result.exception)
    token = result.stdout.strip()
    assert token.count(".") == 2
    identity = Authenticator(secret).verify(token)
    assert identity.user == "alice"
    assert identity.name == "alice"
    assert identity.expires_at is not None
    assert before + 100 <= identity.expires_at <= time.time() + 121


def test_token_with_name_and_scopes() -> None:
    args = ["token", "--user", "bob", "--name", "Bob B", "--scope", "admin", "--scope", "read", "--secret", SECRET]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, repr(result.exception)
    identity = Authenticator(SECRET).verify(result.stdout.strip())
    assert (identity.user, identity.name, identity.scopes) == ("bob", "Bob B", frozenset({"admin", "read"}))


def test_token_is_refused_by_another_secret() -> None:
    from hub.auth import AuthError

    result = CliRunner().invoke(cli, ["token", "--user", "alice", "--secret", SECRET])
    with pytest.raises(AuthError):
        Authenticator("another-secret-0123456789abcdefghij").verify(result.stdout.strip())


def test_token_without_secret_uses_the_data_dir_secret(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["token", "--user", "alice", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    secret = (tmp_path / "data" / "secret").read_text().strip()
    assert Authenticator(secret).verify(result.stdout.strip()).user == "alice"


def test_token_with_a_short_secret_is_a_one_line_error():
    result = CliRunner().invoke(cli, ["token", "--user", "alice", "--secret", "too-short"])
    assert result.exit_code == 2
    assert "at least 32 bytes" in result.output


def test_schema_describes_every_channel_of_the_chosen_plugins() -> None:
    import json

    result = CliRunner().invoke(cli, ["schema", "--plugins", "chat,livedata"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["protocol"] == 1
    assert sorted(document["channels"]) == ["chat", "livedata"]
    chat = document["channels"]["chat"]
    assert chat["channel"] == "chat:<room>"
    assert chat["recoverable"] is True
    send = chat["messages"]["chat.send"]
    assert send["required"] == ["text"]
    assert send["properties"]["text"]["maxLength"] == 2000
    assert "chat.joined" in chat["events"]  # the core's presence events are declared too
    assert chat["snapshot"]["title"] == "ChatSnapshot"  # from the snapshot provider's return annotation
    livedata = document["channels"]["livedata"]
    assert livedata["conflate"] is True
    assert livedata["messages"] == {}
    assert livedata["events"]["livedata.tick"]["title"] == "Quote"


def test_schema_of_an_unknown_plugin_is_a_one_line_error() -> None:
    result = CliRunner().invoke(cli, ["schema", "--plugins", "nope"])
    assert result.exit_code == 2
    assert "unknown plugin 'nope'" in result.output


def test_publish_takes_any_channel_and_notify_sends_notifications() -> None:
    """``hub publish CHANNEL TYPE [DATA]`` is the core's (the server API; --server is the hub), and the notifications
    plugin's command is ``hub notify``: as the installed ``hub`` command shows them (plugins' commands come in
    main()). Both against a real hub: tests/test_cli_api.py."""

    def hub_command(*args: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", "from hub.cli import main; main()", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    listed = [
        line.split()[0] for line in hub_command("--help").split("Commands:")[1].splitlines() if line[2:3].isalpha()
    ]
    assert listed.count("publish") == 1
    assert {"notify", "channels", "presence", "history", "clients", "disconnect", "nodes"} <= set(listed)
    usage = hub_command("publish", "--help")
    assert all(word in usage for word in ("CHANNEL", "TYPE", "DATA", "--server", "--api-key", "--idempotency-key"))
    notify = hub_command("notify", "--help")
    assert all(word in notify for word in ("--title", "--user", "--everyone", "--server", "--hub"))
