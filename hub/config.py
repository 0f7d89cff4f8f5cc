"""The hub's configuration as ``hub serve`` and ``hub config`` load it: the TOML file (``--config``, ``HUB_CONFIG``),
then ``HUB_*`` variables, then flags, for the core's settings and every enabled plugin's; unknown names in the
file (errors) and in the environment (warnings), each with the nearest valid name; and the report of what is in
effect, secrets masked, each value with its origin."""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hub.plugin_api import PluginSetupError
from hub.plugin_catalog import BrokenPluginError, PluginCatalog, UnknownPlugin
from hub.settings import HubSettings
from hub.settings_file import (
    Layers,
    Origin,
    PluginLayers,
    SettingsError,
    build,
    env_names,
    plugin_layers,
    suggestion,
)

CONFIG_ENV = "HUB_CONFIG"
MAX_CONFIG_BYTES = 1024 * 1024
INTERNAL_VARIABLES = frozenset({CONFIG_ENV, "HUB_SETTINGS_JSON", "HUB_PLUGIN_SETTINGS_JSON"})
"""Set by ``hub serve`` itself (the file's path; what its worker processes read)."""
CLIENT_VARIABLES = frozenset({"HUB_URL", "HUB_API_KEY", "HUB_TOKEN"})
"""Read by the hub's client commands (``hub publish``), not by the server."""
DEVELOPMENT_VARIABLES = frozenset(
    {"HUB_TEST_REDIS_URL", "HUB_TEST_REDIS_SERVER", "HUB_CHROMIUM", "HUB_FUZZ_EXAMPLES", "HUB_INSTALL_SYSTEM_PACKAGES"}
)
DEVELOPMENT_PREFIXES = ("HUB_CHAOS_",)
"""Read by this repository's set-up, tests and benchmarks."""
SECRET_WORDS = ("key", "secret", "password", "token")
MASK = "***"


class ConfigError(Exception):
    """The configuration cannot be used: one line saying what to fix."""


# ---- the file ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigFile:
    """A TOML file as the hub reads it: top-level keys are the core's settings, each table a plugin's."""

    path: Path
    core: dict[str, Any]
    tables: dict[str, dict[str, Any]]
    lines: dict[tuple[str, ...], int]
    """(key,) or (table, key) or (table,) -> the line that sets it (1-based), where it could be found."""

    def place(self, *key: str) -> str:
        line = self.lines.get(key)
        return f"{self.path}:{line}" if line else str(self.path)


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ASSIGNMENT = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*="""
)


def _key_parts(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in re.findall(r"""(?:"[^"]*"|'[^']*'|[^.]+)""", text))


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where each key and table header is, by a line scan (tomllib gives no positions): good enough to point at
    a misspelled name; the first occurrence wins."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _key_parts(header.group(1))
            lines.setdefault(table, number)
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment:
            key = (*table, *_key_parts(assignment.group(1)))
            for end in range(1, len(key) + 1):
                lines.setdefault(key[:end], number)
    return lines


def read_config_file(path: Path, core_names: Iterable[str], origin: str) -> ConfigFile:
    """Read and parse ``path`` (named by ``origin``: ``--config`` or ``HUB_CONFIG``); a file that cannot be read
    or parsed, or a top-level name that is neither a setting nor a table, raises :class:`ConfigError`."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"the config file {path} ({origin}) does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"the config file {path} ({origin}) is a directory; name a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"the config file {path} ({origin}) cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB; is it the right file?"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"the config file {path} is not UTF-8 text; is it the right file?") from None
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    lines = key_lines(text)
    core_names = set(core_names)
    core: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {}
    for key, value in parsed.items():
        if key in core_names:
            core[key] = value
        elif isinstance(value, dict):
            tables[key] = value
        else:
            place = f"{path}:{lines[(key,)]}" if (key,) in lines else str(path)
            raise ConfigError(f"{place}: {key} is not a setting{suggestion(key, core_names)}")
    return ConfigFile(path, core, tables, lines)


# ---- loading -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flags:
    """What the command line says: typed flags (``--port``) and ``--set NAME=VALUE`` texts."""

    values: Mapping[str, Any] = field(default_factory=dict)
    """setting -> value, for the flags given (None: not given)."""
    names: Mapping[str, str] = field(default_factory=dict)
    """setting -> its flag (``--port``)."""
    sets: Sequence[str] = ()
    """``--set`` arguments as written: ``port=9000``, ``chat.snapshot_size=20``."""
    config: Path | None = None
    """``--config``."""


@dataclass
class Configuration:
    """The settings in effect, where each came from, and what looked wrong without stopping the hub."""

    settings: HubSettings
    origins: dict[str, tuple[Origin, str]]
    file: ConfigFile | None
    plugins: PluginLayers
    catalog: PluginCatalog
    unknown_variables: list[str]
    """``HUB_*`` variables that are no setting: a warning for ``hub serve``, an error for ``hub config --check``."""
    notes: list[str]
    """Things set for plugins that are not enabled: always warnings."""


def _split_sets(sets: Sequence[str], core_names: set[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    core: dict[str, str] = {}
    tables: dict[str, dict[str, str]] = {}
    for text in sets:
        name, equals, value = text.partition("=")
        name = name.strip()
        if not equals or not name:
            raise ConfigError(f"--set {text!r}: write NAME=VALUE, e.g. --set port=9000 or --set chat.snapshot_size=20")
        table, dot, key = name.rpartition(".")
        if dot:
            tables.setdefault(table.lower(), {})[key.lower()] = value
        elif name.lower() in core_names:
            core[name.lower()] = value
        else:
            raise ConfigError(f"--set {name}: not a setting{suggestion(name.lower(), core_names)}")
    return core, tables


def config_path(flags: Flags) -> tuple[Path, str] | None:
    """The file to read and what named it, if any."""
    if flags.config is not None:
        return flags.config, "--config"
    from_env = os.environ.get(CONFIG_ENV, "").strip()
    return (Path(from_env), CONFIG_ENV) if from_env else None


def load_core(flags: Flags) -> tuple[HubSettings, dict[str, tuple[Origin, str]], ConfigFile | None]:
    """The core's settings alone (for commands that need no plugin: ``hub token``), with their origins and the
    file they were read from. Raises :class:`ConfigError` like :func:`load`; the file's plugin tables are not
    checked."""
    located = config_path(flags)
    file = read_config_file(located[0], set(HubSettings.model_fields), located[1]) if located else None
    core_texts, _ = _split_sets(flags.sets, set(HubSettings.model_fields))
    layers = Layers(
        file=file.core if file else {},
        file_places={name: file.place(name) for name in file.core} if file else {},
        texts=core_texts,
        text_names={name: f"--set {name}" for name in core_texts},
        flags={name: value for name, value in flags.values.items() if value is not None},
        flag_names=flags.names,
    )
    try:
        settings, origins = build(HubSettings, layers)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    return settings, origins, file


def load(flags: Flags, *, installed: Iterable[str] | None = None) -> Configuration:
    """The configuration ``hub serve`` would run with. Raises :class:`ConfigError` for anything that stops it:
    a file that cannot be read, an unknown name in the file or in ``--set``, a value that does not validate
    (the core's or a plugin's), an unknown or broken plugin."""
    settings, origins, file = load_core(flags)
    _, table_texts = _split_sets(flags.sets, set(HubSettings.model_fields))
    try:
        catalog = PluginCatalog.from_entry_points(settings.plugins)
    except (UnknownPlugin, BrokenPluginError) as exc:
        raise ConfigError(str(exc)) from None
    plugins = PluginLayers(
        tables=file.tables if file else {},
        places={(table, key): file.place(table, key) for table, values in file.tables.items() for key in values}
        if file
        else {},
        texts=table_texts,
    )
    build_plugins(catalog, plugins)
    installed_names = set(installed if installed is not None else PluginCatalog.installed().names) | set(catalog.names)
    notes: list[str] = []
    for table in sorted({*plugins.tables, *plugins.texts} - set(plugins.built)):
        where = f"{file.place(table)}: [{table}]" if file and table in file.tables else f"--set {table}.*"
        if table in installed_names:
            notes.append(f"{where} is for the {table} plugin, which is not enabled: ignored")
        else:
            tables = {*plugins.built, *installed_names}
            raise ConfigError(
                f"{where} is not the table of an enabled plugin's settings{suggestion(table, tables, fmt='[{}]')}"
            )
    unknown, disabled = check_environment(plugins, installed=installed_names, enabled=catalog.names)
    return Configuration(settings, origins, file, plugins, catalog, unknown, notes + disabled)


def build_plugins(catalog: PluginCatalog, plugins: PluginLayers) -> None:
    """Build the catalog's plugins for no hub, as a hub would (reading their settings through ``plugins``), to
    check their settings before anything runs."""
    from hub.plugin_manager import PluginManager

    with plugin_layers(plugins):
        try:
            PluginManager(catalog)
        except (PluginSetupError, TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None


def known_variables(plugins: PluginLayers) -> set[str]:
    """Every ``HUB_*`` name something of the hub reads: the core's settings, the enabled plugins' settings, the
    file's path, the client commands' variables and those of this repository's tests."""
    known = set(env_names(HubSettings).values()) | INTERNAL_VARIABLES | CLIENT_VARIABLES | DEVELOPMENT_VARIABLES
    for _, built in plugins.built.values():
        known |= set(env_names(type(built.settings)).values())
    return known


def check_environment(
    plugins: PluginLayers, *, installed: Iterable[str], enabled: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(unknown ``HUB_*`` variables, variables of installed plugins that are not enabled), one sentence each."""
    known = known_variables(plugins)
    dormant = sorted(set(installed) - set(enabled) - set(plugins.built))
    unknown: list[str] = []
    disabled: list[str] = []
    for name in sorted(os.environ):
        upper = name.upper()
        if not upper.startswith("HUB_") or upper in known or upper.startswith(DEVELOPMENT_PREFIXES):
            continue
        owner = next((plugin for plugin in dormant if upper.startswith(f"HUB_{plugin.upper()}_")), None)
        if owner is not None:
            disabled.append(f"{name} is for the {owner} plugin, which is not enabled: ignored")
        else:
            unknown.append(f"{name} is not a setting{suggestion(upper, known)}")
    return unknown, disabled


# ---- the report ----------------------------------------------------------------------------------------------

_URL_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^@/?#]*)@")
_QUERY_SECRET = re.compile(r"([?&][^=&#]*(?:key|secret|password|token)[^=&#]*=)[^&#]*", re.IGNORECASE)


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_url(text: str) -> str:
    """Credentials in a URL masked: ``redis://:pw@host`` -> ``redis://:***@host``, ``user:pw`` -> ``user:***``,
    and query parameters named like secrets (``?password=...``)."""

    def userinfo(match: re.Match[str]) -> str:
        user, colon, _ = match.group(2).partition(":")
        return f"{match.group(1)}{user}:{MASK}@" if colon else f"{match.group(1)}{MASK}@"

    return _QUERY_SECRET.sub(rf"\1{MASK}", _URL_CREDENTIALS.sub(userinfo, text))


def masked(name: str, value: Any) -> Any:
    """A JSON-ready value fit to print: a secret's text (by its name) hidden, URL credentials hidden."""
    if value is None:
        return None
    if isinstance(value, list):
        return [masked(name, item) for item in value]
    if isinstance(value, str):
        return MASK if is_secret(name) else mask_url(value)
    if isinstance(value, dict):
        return {key: masked(f"{name}.{key}", item) for key, item in value.items()}
    return value


def _values(settings: BaseModel) -> dict[str, Any]:
    return {name: masked(name, value) for name, value in settings.model_dump(mode="json").items()}


def _origin_text(origin: tuple[Origin, str]) -> str:
    kind, where = origin
    return f"{kind} {where}" if where else kind


def report_json(configuration: Configuration) -> dict[str, Any]:
    """What ``hub config --json`` prints."""

    def entries(settings: BaseModel, origins: Mapping[str, tuple[Origin, str]]) -> dict[str, Any]:
        values = _values(settings)
        return {
            name: {"value": values[name], "origin": origins[name][0], "from": origins[name][1] or None}
            for name in values
        }

    return {
        "config_file": str(configuration.file.path) if configuration.file else None,
        "settings": entries(configuration.settings, configuration.origins),
        "plugins": {
            table: {"plugin": plugin, "settings": entries(built.settings, built.origins)}
            for table, (plugin, built) in sorted(configuration.plugins.built.items())
        },
        "warnings": [*configuration.unknown_variables, *configuration.notes],
    }


def toml_value(value: Any) -> str:
    """A JSON-ready value written as TOML (for reading; a masked secret is not the real one)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ("-" if value < 0 else "") + ("nan" if math.isnan(value) else "inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    return json.dumps(str(value), ensure_ascii=False)


def _lines(settings: BaseModel, origins: Mapping[str, tuple[Origin, str]]) -> list[tuple[str, str]]:
    lines = []
    for name, value in _values(settings).items():
        text = f"# {name} is unset" if value is None else f"{name} = {toml_value(value)}"
        lines.append((text, _origin_text(origins[name])))
    return lines


def report_text(configuration: Configuration) -> str:
    """What ``hub config`` prints: the settings in effect as TOML, each line's origin in a comment."""
    file = configuration.file
    out = [
        "# The hub's settings in effect: flags over HUB_* variables over the config file over defaults.",
        f"# config file: {file.path}" if file else f"# config file: none (--config or {CONFIG_ENV})",
        "# Secrets and credentials in URLs are masked.",
        "",
    ]
    sections: list[tuple[str | None, list[tuple[str, str]]]] = [
        (None, _lines(configuration.settings, configuration.origins))
    ]
    for table, (plugin, built) in sorted(configuration.plugins.built.items()):
        sections.append((f"[{table}]  # the {plugin} plugin", _lines(built.settings, built.origins)))
    width = min(60, max((len(text) for _, lines in sections for text, _ in lines), default=0))
    for header, lines in sections:
        if header is not None:
            out += ["", header]
        out += [f"{text.ljust(width)}  # {origin}" for text, origin in lines]
    return "\n".join(out)
