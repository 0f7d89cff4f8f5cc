"""settings.py: HUB_* environment variables, comma lists, the default store URL and the generated secret, the log
level and backend URLs checked before anything starts, and every setting (the core's and the plugins') in the docs."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.settings import HubSettings

pytestmark = pytest.mark.usefixtures("clean_hub_environment")


def test_defaults() -> None:
    settings = HubSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.plugins is None
    assert settings.allowed_origins == []
    assert settings.resolved_broker_url() == "memory://"
    assert settings.store_url is None
    assert settings.secret is None


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_HOST", "0.0.0.0")
    monkeypatch.setenv("HUB_PORT", "9001")
    monkeypatch.setenv("HUB_ANONYMOUS", "false")
    monkeypatch.setenv("HUB_HEARTBEAT_INTERVAL", "0.05")
    monkeypatch.setenv("HUB_BROKER_URL", "memory://other")
    monkeypatch.setenv("HUB_SECRET", "from-the-environment-0123456789abcdef")
    monkeypatch.setenv("HUB_DATA_DIR", "/var/lib/hub")
    settings = HubSettings()
    assert settings.host == "0.0.0.0"
    assert settings.port == 9001
    assert settings.anonymous is False
    assert settings.heartbeat_interval == 0.05
    assert settings.broker_url == "memory://other"
    assert settings.secret == "from-the-environment-0123456789abcdef"
    assert settings.data_dir == Path("/var/lib/hub")


def test_explicit_values_override_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PORT", "9001")
    assert HubSettings(port=9002).port == 9002


def test_unprefixed_env_vars_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9001")
    assert HubSettings().port == 8000


@pytest.mark.parametrize(
    ("value", "expected"),
    [("chat", ["chat"]), ("chat,draw", ["chat", "draw"]), (" chat , draw ,, ", ["chat", "draw"])],
)
def test_plugins_are_comma_separated(monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]) -> None:
    monkeypatch.setenv("HUB_PLUGINS", value)
    assert HubSettings().plugins == expected


def test_allowed_origins_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_ALLOWED_ORIGINS", "https://a.example, https://b.example:8443")
    assert HubSettings().allowed_origins == ["https://a.example", "https://b.example:8443"]


def test_allowed_origins_wildcard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_ALLOWED_ORIGINS", "*")
    assert HubSettings().allowed_origins == ["*"]


def test_comma_strings_passed_directly_are_split() -> None:
    settings = HubSettings(plugins="chat,draw", allowed_origins="https://a.example")
    assert settings.plugins == ["chat", "draw"]
    assert settings.allowed_origins == ["https://a.example"]


@pytest.mark.parametrize(("name", "value"), [("HUB_PORT", "70000"), ("HUB_RATE_LIMIT", "0"), ("HUB_PORT", "x")])
def test_invalid_env_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        HubSettings()


# ---- store URL --------------------------------------------------------------------------------------------


def test_resolved_store_url_is_under_the_data_dir(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path / "data")
    assert settings.resolved_store_url() == f"sqlite:///{(tmp_path / 'data' / 'hub.sqlite3').resolve()}"


def test_resolved_store_url_of_a_relative_data_dir_is_absolute(tmp_path: Path) -> None:
    url = HubSettings(data_dir=Path("rel")).resolved_store_url()
    assert url == f"sqlite:///{(tmp_path / 'rel' / 'hub.sqlite3').resolve()}"


def test_resolved_store_url_uses_the_configured_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_STORE_URL", "sqlite:///:memory:")
    assert HubSettings().resolved_store_url() == "sqlite:///:memory:"


# ---- secret -----------------------------------------------------------------------------------------------


def test_resolved_secret_is_generated_once_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = HubSettings(data_dir=data_dir).resolved_secret()
    assert len(first) >= 32
    secret_file = data_dir / "secret"
    assert secret_file.read_text() == first
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert HubSettings(data_dir=data_dir).resolved_secret() == first  # a second process gets the same one
    assert HubSettings(data_dir=tmp_path / "elsewhere").resolved_secret() != first


def test_resolved_secret_reads_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("  a-secret-kept-by-the-operator-0123456789\n")
    assert HubSettings(data_dir=tmp_path).resolved_secret() == "a-secret-kept-by-the-operator-0123456789"


def test_configured_secret_wins_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_SECRET", "configured-secret-0123456789abcdef")
    settings = HubSettings(data_dir=tmp_path / "data")
    assert settings.resolved_secret() == "configured-secret-0123456789abcdef"
    assert not (tmp_path / "data").exists()


def test_the_loop_is_uvloop_when_installed_unless_asyncio_is_asked_for() -> None:
    import importlib.util

    from hub.settings import HubSettings

    installed = importlib.util.find_spec("uvloop") is not None
    assert HubSettings().resolved_loop() == ("uvloop" if installed else "asyncio")
    assert HubSettings(loop="asyncio").resolved_loop() == "asyncio"
    assert HubSettings(loop="uvloop").resolved_loop() == "uvloop"


# ---- validation before anything starts ---------------------------------------------------------------------


@pytest.mark.parametrize("level", ["debug", "INFO", " Warning ", "error", "critical", "trace"])
def test_log_levels_are_read_in_any_case(level: str) -> None:
    assert HubSettings(log_level=level).log_level == level.strip().lower()


@pytest.mark.parametrize("level", ["loud", "", "warn", "10"])
def test_an_unknown_log_level_is_refused(level: str) -> None:
    with pytest.raises(ValidationError, match="should be one of debug, info, warning, error, critical, trace"):
        HubSettings(log_level=level)


@pytest.mark.parametrize(
    ("name", "url", "problem"),
    [
        ("redis_url", "notaurl", "should be a URL starting with redis://"),
        ("redis_url", "memory://", "should be a URL starting with redis://"),
        ("redis_url", "redis://127.0.0.1:port/0", "has a port that is not a number"),
        ("redis_url", "redis://127.0.0.1:70000/0", "has a port that is not a number"),
        ("redis_url", "redis:///0", "names no host"),
        ("redis_url", "unix://", "names no socket path"),
        ("broker_url", "kafka://x", "should be a URL starting with memory://"),
        ("store_url", "memory://", "should be a URL starting with sqlite://"),
    ],
)
def test_an_unusable_backend_url_is_refused(name: str, url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        HubSettings.model_validate({name: url})


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("redis_url", "redis://:pw@10.0.0.5:6379/0"),
        ("redis_url", "rediss://host/1"),
        ("redis_url", "unix:///run/redis.sock"),
        ("redis_url", "redis+cluster://10.0.0.5:7000"),
        ("broker_url", "memory://"),
        ("broker_url", "memory://other"),
        ("store_url", "sqlite:///:memory:"),
        ("store_url", "sqlite:////var/lib/hub/hub.sqlite3?locking=exclusive"),
    ],
)
def test_usable_backend_urls_pass(name: str, url: str) -> None:
    assert getattr(HubSettings.model_validate({name: url}), name) == url


# ---- the docs hold every setting ---------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs"


def first_cell_names(text: str) -> set[str]:
    """The HUB_* names in the first cell of every table row of a document."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| "):
            names |= set(re.findall(r"`(HUB_[A-Z0-9_]+)`", line.split(" | ")[0]))
    return names


def section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    level = heading.split()[0]
    following = re.search(rf"\n{'#' * (len(level) - 1)}#? ", text[start + len(heading) + 2 :])
    return text[start : start + len(heading) + 2 + following.start()] if following else text[start:]


def test_every_core_setting_is_in_the_docs_table() -> None:
    from hub.settings_file import env_names

    table = first_cell_names(section((DOCS / "operations.md").read_text(), "### Every setting"))
    core = set(env_names(HubSettings).values())
    assert core - table == set(), f"settings missing from operations.md's table: {sorted(core - table)}"
    plugin_prefixes = ("HUB_CHAT_", "HUB_DOCEDIT_", "HUB_DRAW_", "HUB_LIVEDATA_", "HUB_NOTIFICATIONS_")
    stale = {name for name in table - core if not name.startswith(plugin_prefixes)}
    assert stale == set(), f"operations.md lists settings that do not exist: {sorted(stale)}"


def test_every_plugin_setting_is_in_the_docs() -> None:
    from hub.config import build_plugins
    from hub.plugin_catalog import PluginCatalog
    from hub.settings_file import PluginLayers, env_names

    plugins = PluginLayers()
    build_plugins(PluginCatalog.from_entry_points(None), plugins)
    assert set(plugins.built) == {"chat", "docedit", "draw", "livedata", "notifications"}
    operations = first_cell_names((DOCS / "operations.md").read_text())
    for table, (plugin, built) in plugins.built.items():
        own = DOCS / f"{plugin}.md"
        documented = operations | (first_cell_names(own.read_text()) if own.exists() else set())
        names = set(env_names(type(built.settings)).values())
        assert names - documented == set(), f"{plugin}: undocumented {sorted(names - documented)}"
        assert f"[{table}]" in (DOCS / "operations.md").read_text()  # its table of the config file is named


def test_the_serve_flags_table_names_each_flag_and_its_variable() -> None:
    from hub.cli import FLAG_NAMES

    text = section((DOCS / "operations.md").read_text(), "### `hub serve` flags")
    for setting, flag in FLAG_NAMES.items():
        [row] = [line for line in text.splitlines() if line.startswith(f"| `{flag}")]
        assert f"| `{setting}` | `HUB_{setting.upper()}` |" in row, row


@pytest.mark.parametrize("value", ["*", "https://a.example", "http://localhost:3000/", "capacitor://localhost", "null"])
def test_origins_that_a_browser_can_send_pass(value: str) -> None:
    assert HubSettings(allowed_origins=value).allowed_origins == [value]


@pytest.mark.parametrize("value", ["app.example", "https://a.example/app", "https://", "https://a.example?x"])
def test_an_entry_that_no_origin_can_match_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="is no origin: write scheme://host"):
        HubSettings(allowed_origins=value)
