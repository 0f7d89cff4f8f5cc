"""The real ``hub`` command, as a user mistypes it: every failure is one line on stderr, no traceback, exit 2 for
usage and settings, 1 for what the world did (a port in use, Redis down), and nothing says "started" first."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HUB = Path(sys.executable).with_name("hub")
SECRET = "cli-errors-test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def hub(
    workdir: Path, *args: str, env: dict[str, str] | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.upper().startswith("HUB_")}
    return subprocess.run(
        [str(HUB), *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        env={**clean, "COLUMNS": str(columns), **(env or {})},
        timeout=60,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one ``error:`` line of a failed command, after checking there is nothing else."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_in_use_is_one_line_before_anything_starts(workdir: Path, listening: int) -> None:
    result = hub(workdir, "serve", "--port", str(listening), "--plugins", "chat")
    line = one_line(result, 1)
    assert line == (
        f"error: 127.0.0.1:{listening} is already in use: stop what listens there, or choose another port "
        "(port from --port)"
    )
    for word in ("started", "Started", "running", "startup"):  # nothing said it started, uvicorn included
        assert word not in result.stderr


def test_a_port_in_use_names_where_the_port_came_from(workdir: Path, listening: int) -> None:
    line = one_line(hub(workdir, "serve", "--plugins", "chat", env={"HUB_PORT": str(listening)}), 1)
    assert line.endswith("(port from HUB_PORT)")
    (workdir / "hub.toml").write_text(f"plugins = ['chat']\nport = {listening}\n")
    line = one_line(hub(workdir, "serve", "--config", "hub.toml"), 1)
    assert line.endswith("(port from hub.toml:2)")


def test_an_unreachable_redis_is_one_line_naming_the_url(workdir: Path) -> None:
    port = free_port()  # nothing listens there
    line = one_line(hub(workdir, "serve", "--redis", f"redis://127.0.0.1:{port}/0"), 1)
    assert line.startswith(
        f"error: cannot reach Redis at redis://127.0.0.1:{port}/0 (the broker and the store; from --redis): "
    )
    assert "Connection refused" in line or "connecting" in line
    assert line.endswith("Check that Redis is running there and reachable from this machine, or fix the URL")


def test_the_redis_url_in_an_error_is_masked(workdir: Path) -> None:
    store = f"redis://:the-password@127.0.0.1:{free_port()}/0"
    line = one_line(hub(workdir, "serve", "--plugins", "chat", env={"HUB_STORE_URL": store}), 1)
    assert "the-password" not in line
    assert f"cannot reach Redis at {store.replace('the-password', '***')} (the store; from HUB_STORE_URL)" in line


def test_a_plain_url_naming_a_cluster_node_is_one_line(workdir: Path, redis_cluster_url: str) -> None:
    plain = redis_cluster_url.replace("redis+cluster://", "redis://")
    line = one_line(hub(workdir, "serve", "--plugins", "chat", "--redis", plain), 1)
    assert line == (
        f"error: cannot use Redis at {plain} (the broker and the store; from --redis): '{plain}' is a Redis Cluster "
        "node: use redis+cluster:// instead. Fix the URL or the Redis it names"
    )


def test_a_broker_alone_starts_while_its_redis_is_down(workdir: Path) -> None:
    """As documented: it connects in the background, and the node is not ready until it does."""
    import httpx

    port = free_port()
    broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    process = subprocess.Popen(
        [str(HUB), "serve", "--plugins", "chat", "--port", str(port), "--broker", broker],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answer = None
        for _ in range(300):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1]
                time.sleep(0.1)
        assert answer is not None
        assert answer.status_code == 503
        assert answer.json()["broker"] == "unavailable"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "env", "code", "expected"),
    [
        (["serve", "--redis", "notaurl"], {}, 2, "error: --redis: should be a URL starting with redis://"),
        (["serve", "--broker", "redis://h:port/0"], {}, 2, "error: --broker: has a port that is not a number"),
        (["serve", "--store", "postgres://db/x"], {}, 2, "error: --store: should be a URL starting with sqlite://"),
        (["serve", "--log-level", "loud"], {}, 2, "error: --log-level: should be one of debug, info, warning"),
        (["serve"], {"HUB_LOG_LEVEL": "loud"}, 2, "error: HUB_LOG_LEVEL: should be one of debug, info"),
        (["serve", "--log-format", "xml"], {}, 2, "error: --log-format: Input should be 'text' or 'json'"),
        (["serve", "--port", "abc"], {}, 2, "error: Invalid value for '--port'"),
        (["serve", "--port", "70000"], {}, 2, "error: --port: Input should be less than or equal to 65535"),
        (["serve", "--workers", "0"], {}, 2, "error: Invalid value for '--workers'"),
        (["serve", "--workers", "2"], {}, 2, "error: --workers > 1 needs a shared broker"),
        (["serve", "--portt", "1"], {}, 2, "error: No such option: --portt"),
        (["serve", "--plugins", "chat,nope"], {}, 2, "error: unknown plugin 'nope'; available: chat, docedit"),
        (["serve", "--secret", "short"], {}, 2, "error: the token settings are not usable: the JWT secret must"),
        (["serve", "--host", "no-such-host.invalid"], {}, 1, "error: cannot listen on 'no-such-host.invalid'"),
        (["serve", "--host", "192.0.2.1"], {}, 1, "error: cannot listen on 192.0.2.1: no interface of this machine"),
        (["serve", "--config", "missing.toml"], {}, 2, "error: the config file missing.toml (--config) does not"),
        (["serve", "--set", "chat.snapshot_size=many"], {}, 2, "error: plugin 'chat': its settings are not valid"),
        (["nosuchcommand"], {}, 2, "error: No such command 'nosuchcommand'. (see 'hub --help')"),
        (["token"], {}, 2, "error: Missing option '--user'. (see 'hub token --help')"),
        (["token", "--user", "a", "--secret", "short"], {}, 2, "error: the JWT secret must be at least 32 bytes"),
        (["token", "--user", "a", "--ttl", "soon"], {}, 2, "error: Invalid value for '--ttl'"),
        (["token", "--user", "a", "--ttl", "0"], {}, 2, "error: Invalid value for '--ttl': Input should be greater"),
        (["token", "--user", " "], {}, 2, "error: --user must name a user (the token's 'sub'), not be empty"),
        (["token", "--user", "a", "--scope", ""], {}, 2, "error: --scope must name a scope, not be empty"),
        (["serve", "--allowed-origins", "app.example"], {}, 2, "error: --allowed-origins: 'app.example' is no origin"),
        (["serve"], {"HUB_ALLOWED_ORIGINS": "https://a.example/app"}, 2, "error: HUB_ALLOWED_ORIGINS: 'https://a."),
        (["serve", "--data-dir", "/etc/hostname"], {}, 1, "error: cannot make or read the secret /etc/hostname/"),
        (["schema", "--plugins", "nope"], {}, 2, "error: unknown plugin 'nope'"),
        (["plugins", "--wide"], {}, 2, "error: No such option: --wide"),
        (["config", "--config", "missing.toml"], {}, 2, "error: the config file missing.toml (--config) does not"),
        (["config", "--check", "--port", "-1"], {}, 1, "error: --port: Input should be greater than or equal to 0"),
        (["bench", "--url", "ws://192.0.2.1:8000/ws"], {}, 2, "error: Invalid value for --url: not a loopback"),
        (["bench", "--size", "0"], {}, 2, "error: Invalid value for '--size'"),
        (["publish", "chat:lobby"], {}, 2, "error: Missing argument"),
    ],
)
@pytest.mark.usefixtures("clean_hub_environment")
def test_every_user_error_is_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    code: int,
    expected: str,
) -> None:
    """In this process, through the same entry as the command (``hub.cli.run``): the sweep stays fast. The
    server is replaced by its first step, binding the port, so a case that got past every check fails here
    instead of serving."""
    import hub.server
    from hub.cli import run
    from hub.startup import bind

    def bind_only(settings: Any, **options: Any) -> None:
        for sock in bind(settings.host, settings.port):
            sock.close()
        raise AssertionError(f"{args} reached the server")

    monkeypatch.setattr(hub.server, "serve", bind_only)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run(args) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    [line] = err.splitlines()
    assert line.startswith(expected), line


def test_a_usage_error_of_the_real_command_is_one_line(workdir: Path) -> None:
    line = one_line(hub(workdir, "serve", "--port", "abc"), 2)
    assert line == (
        "error: Invalid value for '--port': Input should be a valid integer, unable to parse string as an integer "
        "(see 'hub serve --help')"
    )
    assert one_line(hub(workdir, "serve", "--log-level", "loud"), 2).startswith("error: --log-level: should be")
    assert one_line(hub(workdir, "serve", "--redis", "notaurl"), 2).startswith("error: --redis: should be a URL")


def test_no_command_prints_the_help_and_exits_2(workdir: Path) -> None:
    result = hub(workdir)
    assert result.returncode == 2
    assert "Usage: hub [OPTIONS] COMMAND [ARGS]..." in result.stderr
    assert "Traceback" not in result.stderr


def help_lines(text: str) -> list[str]:
    lines = text.splitlines()
    assert len(lines) > 3
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    assert "…" not in text  # nothing cut off
    assert "─" not in text  # no boxes
    return lines


@pytest.mark.parametrize("command", ["serve", None])
def test_help_of_the_real_command_is_readable_at_80_columns(workdir: Path, command: str | None) -> None:
    result = hub(workdir, *([command] if command else []), "--help", columns=80)
    assert result.returncode == 0, result.stderr
    help_lines(result.stdout)


@pytest.mark.parametrize(
    "command", ["config", "plugins", "schema", "token", "bench", "version", "publish", "channels", "disconnect"]
)
@pytest.mark.usefixtures("clean_hub_environment")
def test_every_help_is_readable_at_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    from hub.cli import run

    monkeypatch.setenv("COLUMNS", "80")
    assert run([command, "--help"]) == 0
    help_lines(capsys.readouterr().out)


def test_serve_help_lists_every_flag_with_its_meaning(workdir: Path) -> None:
    text = hub(workdir, "serve", "--help", columns=80).stdout
    flags = "--config --set --plugins --host --port --redis --workers --broker --store --data-dir --secret"
    for flag in [*flags.split(), "--allowed-origins", "--anonymous", "--log-level", "--log-format"]:
        assert f"  {flag}" in text or f", {flag}" in text, flag
    assert "redis+cluster://host:port" in text  # the long help is wrapped, not cut


@pytest.mark.usefixtures("clean_hub_environment")
def test_token_names_the_secret_it_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.auth import Authenticator
    from hub.cli import run

    def token(*args: str) -> tuple[str, list[str]]:
        assert run(["token", *args]) == 0
        out, err = capsys.readouterr()
        return out.strip(), err.splitlines()

    made, said = token("--user", "alice", "--data-dir", "data")
    secret = (tmp_path / "data" / "secret").read_text().strip()
    assert Authenticator(secret).verify(made).user == "alice"
    assert said == [
        f"warning: made a new secret in {Path('data') / 'secret'}: a hub running with another secret refuses this "
        "token; give the hub's --data-dir (or HUB_DATA_DIR), or --secret"
    ]
    again, said = token("--user", "alice", "--data-dir", "data")
    assert said == [f"signed with the secret in {Path('data') / 'secret'}"]
    assert Authenticator(secret).verify(again).user == "alice"
    _, said = token("--user", "bob", "--secret", "f" * 32)
    assert said == ["signed with the secret from --secret"]
    (tmp_path / "hub.toml").write_text(f'secret = "{"c" * 40}"\n')
    from_file, said = token("--user", "carol", "--config", "hub.toml")
    assert said == ["signed with the secret from hub.toml:1"]
    assert Authenticator("c" * 40).verify(from_file).user == "carol"
    monkeypatch.setenv("HUB_SECRET", SECRET)
    from_env, said = token("--user", "dave", "--config", "hub.toml")  # the variable over the file
    assert said == ["signed with the secret from HUB_SECRET"]
    assert Authenticator(SECRET).verify(from_env).user == "dave"
    assert run(["token", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "stderr says which" in help_text
    assert "a running hub with another secret refuses the token" in help_text


def test_an_outage_during_start_up_is_one_line(workdir: Path) -> None:
    """Redis gone between the check and the start (the store's start-up fails): no traceback, exit 1."""
    port = free_port()
    script = (
        "import sys\n"
        "from hub.server import serve\n"
        "from hub.settings import HubSettings\n"
        "from hub.startup import StartupError\n"
        f"settings = HubSettings(port=0, plugins=['chat'], store_url='redis://127.0.0.1:{port}/0', secret='{SECRET}')\n"
        "try:\n"
        "    serve(settings)\n"
        "except StartupError as exc:\n"
        "    print(f'error: {exc}', file=sys.stderr)\n"
        "    sys.exit(1)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=workdir, timeout=60, check=False
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"error: the hub could not start: redis: Error 111 connecting to 127.0.0.1:{port}" in result.stderr
    assert "hub started" not in result.stderr
