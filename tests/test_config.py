"""config.py and settings_file.py through ``hub config``: the TOML file under HUB_* variables under flags, for the
core's settings and the plugins'; unknown names with the nearest valid one; values that do not validate; the
report with each value's origin and secrets masked; ``--check``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import hub.server
from hub.cli import cli, package_version
from hub.config import mask_url

pytestmark = pytest.mark.usefixtures("clean_hub_environment")


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def config_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run("config", "--json", *args, env=env)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replaces the real server: what `hub serve` would have run."""
    calls: list[dict[str, Any]] = []

    def record(settings: object, **options: Any) -> None:
        calls.append({"settings": settings, **options})

    monkeypatch.setattr(hub.server, "serve", record)
    return calls


# ---- precedence ----------------------------------------------------------------------------------------------

LAYERS = [
    ({}, [], 8000, ("default", None)),
    ({"file": True}, [], 7001, ("file", "hub.toml:2")),
    ({"file": True, "env": True}, [], 7002, ("env", "HUB_PORT")),
    ({"file": True, "env": True}, ["--port", "7003"], 7003, ("flag", "--port")),
    ({"file": True, "env": True}, ["--set", "port=7004"], 7004, ("flag", "--set port")),
    ({"file": True, "env": True}, ["--set", "port=7004", "--port", "7003"], 7003, ("flag", "--port")),
    ({"env": True}, [], 7002, ("env", "HUB_PORT")),
]


@pytest.mark.parametrize(("given", "flags", "port", "origin"), LAYERS)
def test_core_settings_take_file_then_env_then_flags(
    tmp_path: Path, given: dict[str, bool], flags: list[str], port: int, origin: tuple[str, str | None]
) -> None:
    write(tmp_path / "hub.toml", '# the hub\nport = 7001\nhost = "0.0.0.0"\n')
    args = ["--config", "hub.toml"] if given.get("file") else []
    env = {"HUB_PORT": "7002"} if given.get("env") else {}
    document = config_json(*args, *flags, env=env)
    entry = document["settings"]["port"]
    assert (entry["value"], entry["origin"], entry["from"]) == (port, *origin)
    if given.get("file"):
        assert document["settings"]["host"] == {"value": "0.0.0.0", "origin": "file", "from": "hub.toml:3"}


@pytest.mark.parametrize(
    ("file", "env", "flags", "size", "origin"),
    [
        (False, False, [], 50, ("default", None)),
        (True, False, [], 11, ("file", "hub.toml:3")),
        (True, True, [], 12, ("env", "HUB_CHAT_SNAPSHOT_SIZE")),
        (True, True, ["--set", "chat.snapshot_size=13"], 13, ("flag", "--set chat.snapshot_size")),
    ],
)
def test_plugin_settings_take_their_table_then_env_then_flags(
    tmp_path: Path, file: bool, env: bool, flags: list[str], size: int, origin: tuple[str, str | None]
) -> None:
    write(tmp_path / "hub.toml", "[chat]\n\nsnapshot_size = 11\nsend_rate = 2.5\n")
    document = config_json(
        *(["--config", "hub.toml"] if file else []),
        "--plugins",
        "chat",
        *flags,
        env={"HUB_CHAT_SNAPSHOT_SIZE": "12"} if env else {},
    )
    chat = document["plugins"]["chat"]
    assert chat["plugin"] == "chat"
    entry = chat["settings"]["snapshot_size"]
    assert (entry["value"], entry["origin"], entry["from"]) == (size, *origin)
    assert chat["settings"]["send_rate"]["value"] == (2.5 if file else 5.0)


def test_serve_hands_the_plugins_their_table(tmp_path: Path, served: list[dict[str, Any]]) -> None:
    from hub.plugin_api import Hub
    from hub.settings_file import plugin_layers
    from hub_realtime_plugins.chat.plugin import ChatSettings

    write(tmp_path / "hub.toml", "port = 9123\nplugins = ['chat']\n[chat]\nsnapshot_size = 3\n")
    result = run("serve", "--config", "hub.toml", "--set", "chat.send_burst=4")
    assert result.exit_code == 0, result.output
    [call] = served
    assert call["settings"].port == 9123
    assert call["settings"].plugins == ["chat"]
    with plugin_layers(call["plugins"]):  # as the server builds its plugins
        settings = Hub(None, "chat").settings(ChatSettings)
    assert (settings.snapshot_size, settings.send_burst) == (3, 4)


def test_hub_config_env_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "elsewhere.toml", "rate_limit = 75.5\n")
    document = config_json(env={"HUB_CONFIG": str(tmp_path / "elsewhere.toml")})
    assert document["config_file"] == str(tmp_path / "elsewhere.toml")
    assert document["settings"]["rate_limit"]["value"] == 75.5
    assert document["settings"]["rate_limit"]["origin"] == "file"


def test_lists_and_paths_from_the_file(tmp_path: Path) -> None:
    write(
        tmp_path / "hub.toml",
        'plugins = ["chat", "draw"]\nallowed_origins = "https://a.example, https://b.example"\ndata_dir = "/var/x"\n',
    )
    settings = config_json("--config", "hub.toml")["settings"]
    assert settings["plugins"]["value"] == ["chat", "draw"]
    assert settings["allowed_origins"]["value"] == ["https://a.example", "https://b.example"]
    assert settings["data_dir"]["value"] == "/var/x"


# ---- what the file may not say -------------------------------------------------------------------------------


def one_line_error(result: Any, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return str(lines[0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port = 9000\nportt = 9001\n", "hub.toml:2: portt is not a setting; did you mean port?"),
        (
            "[chat]\nsnapshot_sise = 5\n",
            "hub.toml:2: [chat] snapshot_sise is not a setting of the chat plugin; did you mean snapshot_size?",
        ),
        ("x = 1\n\n[chta]\nsnapshot_size = 5\n", "hub.toml:1: x is not a setting"),
        (
            "[chta]\nsnapshot_size = 5\n",
            "hub.toml:1: [chta] is not the table of an enabled plugin's settings; did you mean [chat]?",
        ),
        ("\n\nport = 70000\n", "hub.toml:3: port: Input should be less than or equal to 65535"),
        ("log_level = 'loud'\n", "hub.toml:1: log_level: should be one of debug, info, warning, error, critical"),
        ("redis_url = 'redis://h:xx/0'\n", "hub.toml:1: redis_url: has a port that is not a number from 0 to 65535"),
        ("[chat]\n  snapshot_size = 'many'\n", "hub.toml:2: [chat] snapshot_size: Input should be a valid integer"),
        ("port = \n", "hub.toml: not valid TOML: Invalid value (at line 1, column 8)"),
        ('plugins = ["chat", "nope"]\n', "unknown plugin 'nope'; available: chat, docedit, draw, livedata"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_place(tmp_path: Path, served: list[object], text: str, message: str) -> None:
    write(tmp_path / "hub.toml", text)
    line = one_line_error(run("serve", "--config", "hub.toml"), code=2)
    assert message in line
    assert served == []
    assert message in one_line_error(run("config", "--check", "--config", "hub.toml"), code=1)


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    assert "the config file nope.toml (--config) does not exist" in one_line_error(
        run("config", "--config", "nope.toml"), code=2
    )
    assert "(HUB_CONFIG) does not exist" in one_line_error(run("config", env={"HUB_CONFIG": "gone.toml"}), code=2)
    (tmp_path / "dir.toml").mkdir()
    assert "is a directory" in one_line_error(run("config", "--config", "dir.toml"), code=2)
    write(tmp_path / "big.toml", "# " + "x" * (1024 * 1024) + "\n")
    assert "is larger than 1024 KiB" in one_line_error(run("config", "--config", "big.toml"), code=2)
    (tmp_path / "binary.toml").write_bytes(b"port = 1\n\xff\xfe")
    assert "is not UTF-8 text" in one_line_error(run("config", "--config", "binary.toml"), code=2)


def test_a_table_of_an_installed_plugin_that_is_not_enabled_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path / "hub.toml", "plugins = ['chat']\n\n[draw]\nmax_objects = 5\n")
    result = run("config", "--check", "--config", "hub.toml")
    assert result.exit_code == 0, result.output
    assert "warning: hub.toml:3: [draw] is for the draw plugin, which is not enabled: ignored" in result.stderr


def test_set_needs_a_known_name_and_an_equals_sign() -> None:
    assert "write NAME=VALUE" in one_line_error(run("config", "--set", "port"), code=2)
    assert "--set rate_limt: not a setting; did you mean rate_limit?" in one_line_error(
        run("config", "--set", "rate_limt=5"), code=2
    )
    assert "--set chat.snapshot_size: Input should be a valid integer" in one_line_error(
        run("config", "--set", "chat.snapshot_size=x"), code=2
    )
    assert "--set anonymous: Input should be a valid boolean" in one_line_error(
        run("config", "--set", "anonymous=perhaps"), code=2
    )


def test_set_reads_text_like_the_variable_would() -> None:
    settings = config_json("--set", "plugins=chat, draw", "--set", "anonymous=0", "--set", "send_buffer_bytes=8192")[
        "settings"
    ]
    assert settings["plugins"]["value"] == ["chat", "draw"]
    assert settings["anonymous"]["value"] is False
    assert settings["send_buffer_bytes"]["value"] == 8192


# ---- the environment -----------------------------------------------------------------------------------------


def test_an_unknown_variable_is_a_warning_and_an_error_under_check() -> None:
    env = {"HUB_PORTT": "9000", "HUB_DRAW_MAX_OBJECTZ": "5"}
    result = run("config", env=env)
    assert result.exit_code == 0, result.output
    assert "warning: HUB_DRAW_MAX_OBJECTZ is not a setting; did you mean HUB_DRAW_MAX_OBJECTS?" in result.stderr
    assert "warning: HUB_PORTT is not a setting; did you mean HUB_PORT?" in result.stderr
    checked = run("config", "--check", env=env)
    assert checked.exit_code == 1
    assert checked.stderr.splitlines() == [
        "error: HUB_DRAW_MAX_OBJECTZ is not a setting; did you mean HUB_DRAW_MAX_OBJECTS?",
        "error: HUB_PORTT is not a setting; did you mean HUB_PORT?",
    ]


def test_known_variables_are_not_reported() -> None:
    env = {
        "HUB_DRAW_MAX_OBJECTS": "5",  # an enabled plugin's
        "HUB_URL": "http://127.0.0.1:8000",  # the client commands'
        "HUB_API_KEY": "k",
        "HUB_TEST_REDIS_URL": "redis://127.0.0.1:1/0",  # this repository's tests'
        "HUB_CHAOS_STEPS": "3",
        "HUB_CONFIG": "",
    }
    result = run("config", "--check", env=env)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.startswith("ok: the settings are valid (plugins: chat, docedit, draw")


def test_a_variable_of_a_plugin_that_is_not_enabled_is_only_a_warning() -> None:
    result = run("config", "--check", "--plugins", "chat", env={"HUB_DRAW_MAX_OBJECTS": "5"})
    assert result.exit_code == 0, result.output
    assert "warning: HUB_DRAW_MAX_OBJECTS is for the draw plugin, which is not enabled: ignored" in result.stderr


def test_check_refuses_settings_that_cannot_run_together() -> None:
    result = run("config", "--check", "--workers", "2")
    assert result.exit_code == 1
    assert "error: --workers > 1 needs a shared broker" in result.stderr
    short = run("config", "--check", "--secret", "short")
    assert short.exit_code == 1
    assert "the JWT secret must be at least 32 bytes long" in short.stderr


def test_check_makes_no_secret(tmp_path: Path) -> None:
    result = run("config", "--check", "--data-dir", "data")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "data").exists()


# ---- the report ----------------------------------------------------------------------------------------------

SECRET = "a-very-secret-value-0123456789abcdef"


def test_secrets_are_masked_in_both_reports(tmp_path: Path) -> None:
    write(
        tmp_path / "hub.toml",
        f'redis_url = "redis://alice:{SECRET}@127.0.0.1:6379/0"\n'
        f'broker_url = "rediss://:{SECRET}@10.0.0.1:6380/1?password={SECRET}&db=1"\n'
        f'api_keys = ["{SECRET}1", "{SECRET}2"]\n',
    )
    env = {"HUB_SECRET": SECRET, "HUB_JWT_PUBLIC_KEY": f"-----BEGIN PUBLIC KEY-----{SECRET}"}
    for args in (["--json"], []):
        result = run("config", "--config", "hub.toml", *args, env=env)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
    settings = config_json("--config", "hub.toml", env=env)["settings"]
    assert settings["secret"] == {"value": "***", "origin": "env", "from": "HUB_SECRET"}
    assert settings["api_keys"]["value"] == ["***", "***"]
    assert settings["jwt_public_key"]["value"] == "***"
    assert settings["redis_url"]["value"] == "redis://alice:***@127.0.0.1:6379/0"
    assert settings["broker_url"]["value"] == "rediss://:***@10.0.0.1:6380/1?password=***&db=1"
    assert settings["token_leeway"]["value"] == 0.0  # a number named like a secret is no secret
    assert settings["redis_prefix"]["value"] == "hub"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@host/0", "redis://:***@host/0"),
        ("redis://user:pw@host/0", "redis://user:***@host/0"),
        ("redis://justatoken@host/0", "redis://***@host/0"),
        ("https://idp.example/jwks?token=abc&x=1", "https://idp.example/jwks?token=***&x=1"),
        ("sqlite:////var/lib/hub.sqlite3", "sqlite:////var/lib/hub.sqlite3"),
    ],
)
def test_credentials_in_urls_are_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_the_text_report_is_toml_with_each_origin(tmp_path: Path) -> None:
    write(tmp_path / "hub.toml", "port = 7001\n[chat]\nsnapshot_size = 7\n")
    result = run("config", "--config", "hub.toml", "--plugins", "chat,livedata", "--host", "0.0.0.0")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("port = 7001 ") and line.endswith("# file hub.toml:1") for line in lines)
    assert any(line.startswith('host = "0.0.0.0" ') and line.endswith("# flag --host") for line in lines)
    assert any(line.startswith("# redis_url is unset ") and line.endswith("# default") for line in lines)
    assert any(line.startswith("snapshot_size = 7 ") and line.endswith("# file hub.toml:3") for line in lines)
    document = tomllib.loads(result.stdout)  # what it prints is itself a config file (secrets masked)
    assert document["port"] == 7001
    assert document["chat"]["snapshot_size"] == 7
    assert document["livedata"]["symbols"] == ["ACME", "GLOBX", "HOOLI", "INITECH", "STARK", "UMBRL"]
    assert "redis_url" not in document


def test_version_is_the_package_metadata() -> None:
    from importlib.metadata import version

    assert package_version() == version("hub-realtime")
    for args in (["--version"], ["version"]):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"hub {version('hub-realtime')}\n"


def test_the_documented_example_is_a_valid_config_file(tmp_path: Path) -> None:
    import re

    docs = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
    section = docs.read_text().split("### The config file", 1)[1]
    example = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert example is not None
    write(tmp_path / "hub.toml", example.group(1))
    result = run("config", "--check", "--config", "hub.toml")
    assert result.exit_code == 0, result.output
    settings = config_json("--config", "hub.toml")
    assert settings["settings"]["redis_url"]["origin"] == "file"
    assert settings["plugins"]["chat"]["settings"]["snapshot_size"]["value"] == 100
    assert settings["plugins"]["draw"]["settings"]["max_objects"]["value"] == 5000
