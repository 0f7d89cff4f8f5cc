"""Settings in layers: a settings model (HubSettings, a plugin's) built from flags over the environment over the
configuration file over its defaults, with each value's origin, and one-line errors that name where a bad value
came from. A plugin's table of the file reaches :meth:`hub.Hub.settings` through :func:`plugin_layers`."""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from pydantic import ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, InitSettingsSource, PydanticBaseSettingsSource

SettingsT = TypeVar("SettingsT", bound=BaseSettings)
Origin = Literal["default", "file", "env", "flag"]


class SettingsError(ValueError):
    """A setting that cannot be used, as one line naming where it came from (``hub.toml:3: port: ...``,
    ``HUB_PORT: ...``, ``--port: ...``) and what is allowed."""


@dataclass(frozen=True)
class Layers:
    """What one settings model is built from besides the environment and its defaults."""

    file: Mapping[str, Any] = field(default_factory=dict)
    """Values from the configuration file (TOML types), below the environment."""
    file_places: Mapping[str, str] = field(default_factory=dict)
    """name -> where the file sets it: ``hub.toml:3``."""
    table: str | None = None
    """The file's table these values come from (a plugin's), or None for the top level (the core's)."""
    texts: Mapping[str, str] = field(default_factory=dict)
    """``--set NAME=VALUE`` values: text read exactly as the environment variable would be, above the environment."""
    text_names: Mapping[str, str] = field(default_factory=dict)
    """name -> how the flag was written (``--set port``)."""
    flags: Mapping[str, Any] = field(default_factory=dict)
    """Typed flags (``--port 9000``), above everything."""
    flag_names: Mapping[str, str] = field(default_factory=dict)
    """name -> the flag (``--port``)."""


@dataclass(frozen=True)
class Built:
    """A settings object and where each of its values came from."""

    settings: BaseSettings
    origins: dict[str, tuple[Origin, str]]
    """name -> (origin, where): ``("env", "HUB_PORT")``, ``("file", "hub.toml:3")``, ``("default", "")``."""


_building: ContextVar[Layers] = ContextVar("hub_settings_layers")


class _TextSource(EnvSettingsSource):
    """``--set`` values, decoded like environment variables (comma lists, JSON for complex fields)."""

    def __init__(self, settings_cls: type[BaseSettings], texts: Mapping[str, str]) -> None:
        self._texts = texts
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        prefix = str(self.settings_cls.model_config.get("env_prefix", ""))
        texts = {f"{prefix}{name}": value for name, value in self._texts.items()}
        return texts if self.case_sensitive else {key.lower(): value for key, value in texts.items()}


@functools.cache
def _layered(model: type[SettingsT]) -> type[SettingsT]:
    """``model`` with two more sources, read from the layers being built: ``--set`` texts just above the
    environment, the file just below it. Cached: one subclass per model."""

    class Layered(model):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources = model.settings_customise_sources(
                settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
            )
            layers = _building.get()
            texts = _TextSource(settings_cls, layers.texts)
            file = InitSettingsSource(settings_cls, dict(layers.file))
            if env_settings in sources:
                at = sources.index(env_settings)
                return (*sources[:at], texts, env_settings, file, *sources[at + 1 :])
            return (*sources, texts, file)  # a model that reads no environment: the layers still count

    Layered.__name__ = Layered.__qualname__ = model.__name__
    return Layered


def env_names(model: type[BaseSettings]) -> dict[str, str]:
    """name -> the environment variable that sets it (``port`` -> ``HUB_PORT``)."""
    prefix = str(model.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        names[name] = (alias or f"{prefix}{name}").upper()
    return names


def _from_env(model: type[BaseSettings]) -> set[str]:
    """The names the environment sets for ``model``, as pydantic-settings reads it."""
    found = EnvSettingsSource(model)()
    return {name for name in model.model_fields if name in found}


def build(model: type[SettingsT], layers: Layers | None = None) -> tuple[SettingsT, dict[str, tuple[Origin, str]]]:
    """``model`` built from ``layers`` and the environment, and each value's origin. A value that does not
    validate raises :class:`SettingsError` naming where it came from."""
    layers = layers or Layers()
    from_env = _from_env(model)
    variables = env_names(model)
    origins: dict[str, tuple[Origin, str]] = {}
    for name in model.model_fields:
        if name in layers.flags:
            origins[name] = ("flag", layers.flag_names.get(name, f"--{name.replace('_', '-')}"))
        elif name in layers.texts:
            origins[name] = ("flag", layers.text_names.get(name, f"--set {name}"))
        elif name in from_env:
            origins[name] = ("env", variables[name])
        elif name in layers.file:
            origins[name] = ("file", layers.file_places.get(name, "?"))
        else:
            origins[name] = ("default", "")
    token = _building.set(layers)
    try:
        layered = _layered(model)(**layers.flags)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc, model, layers, origins)) from None
    finally:
        _building.reset(token)
    values = {name: getattr(layered, name) for name in model.model_fields}
    settings = model.model_construct(_fields_set=set(layered.model_fields_set), **values)
    return cast(SettingsT, settings), origins


def describe_errors(
    exc: ValidationError, model: type[BaseSettings], layers: Layers, origins: Mapping[str, tuple[Origin, str]]
) -> str:
    """pydantic's errors on one line, each naming where its value came from."""
    variables = env_names(model)
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = error["loc"]
        name = str(loc[0]) if loc else ""
        origin, _ = origins.get(name, ("default", ""))
        if origin == "file":
            where = file_key(layers, name)
        elif origin == "env":
            where = variables.get(name, name)
        elif origin == "flag":
            where = origins[name][1]
        else:
            where = name or model.__name__
        if len(loc) > 1:
            where += "[" + "][".join(str(part) for part in loc[1:]) + "]"
        message = " ".join(str(error["msg"]).split())  # one line, whatever pydantic wrote
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def file_key(layers: Layers, name: str) -> str:
    """``hub.toml:3: port``, or ``hub.toml:9: [chat] snapshot_size`` in a plugin's table."""
    key = name if layers.table is None else f"[{layers.table}] {name}"
    return f"{layers.file_places.get(name, '?')}: {key}"


def nearest(name: str, candidates: Iterator[str] | list[str] | set[str]) -> str | None:
    """The candidate most like ``name`` (a misspelling), if any is close."""
    found = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def suggestion(name: str, candidates: Iterator[str] | list[str] | set[str], *, fmt: str = "{}") -> str:
    """``; did you mean X?`` for the nearest candidate, or nothing."""
    found = nearest(name, candidates)
    return f"; did you mean {fmt.format(found)}?" if found else ""


# ---- plugins' settings ---------------------------------------------------------------------------------------


def table_name(model: type[BaseSettings]) -> str:
    """The file's table for a plugin's settings model, named like its variables: ``HUB_DRAW_`` -> ``draw``."""
    prefix = str(model.model_config.get("env_prefix", "")).upper()
    if prefix.startswith("HUB_"):
        prefix = prefix[len("HUB_") :]
    return prefix.strip("_").lower()


@dataclass
class PluginLayers:
    """The file's plugin tables and the ``--set table.name=value`` flags, while plugins are built."""

    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    places: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(table, name) -> ``hub.toml:9``."""
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    built: dict[str, tuple[str, Built]] = field(default_factory=dict)
    """table -> (plugin name, its settings and their origins), filled as plugins ask for their settings."""

    def layers_for(self, table: str) -> Layers:
        places = {name: self.places.get((table, name), "?") for name in self.tables.get(table, {})}
        texts = self.texts.get(table, {})
        return Layers(
            file=self.tables.get(table, {}),
            file_places=places,
            table=table,
            texts=texts,
            text_names={name: f"--set {table}.{name}" for name in texts},
        )

    def to_json(self) -> dict[str, Any]:
        """What a worker process needs to build the same plugin settings (tables and flags, not what was built)."""
        return {
            "tables": {name: dict(values) for name, values in self.tables.items()},
            "places": [[table, name, where] for (table, name), where in self.places.items()],
            "texts": {name: dict(values) for name, values in self.texts.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PluginLayers:
        return cls(
            tables=data.get("tables", {}),
            places={(table, name): where for table, name, where in data.get("places", [])},
            texts=data.get("texts", {}),
        )


_plugin_layers: ContextVar[PluginLayers | None] = ContextVar("hub_plugin_layers", default=None)


@contextmanager
def plugin_layers(layers: PluginLayers) -> Iterator[PluginLayers]:
    """Plugins built inside this block read their tables of the file and their ``--set`` flags."""
    token = _plugin_layers.set(layers)
    try:
        yield layers
    finally:
        _plugin_layers.reset(token)


def plugin_settings(model: type[SettingsT], plugin: str) -> SettingsT:
    """A plugin's settings (``Hub.settings``): flags over its ``HUB_<TABLE>_*`` variables over its table of the
    file over its defaults. A name its table does not know, or a value that does not validate, raises
    :class:`SettingsError`."""
    active = _plugin_layers.get()
    if active is None:
        settings, _ = build(model)
        return settings
    table = table_name(model)
    layers = active.layers_for(table)
    for name in (*layers.file, *layers.texts):
        if name not in model.model_fields:
            where = file_key(layers, name) if name in layers.file else f"--set {table}.{name}"
            raise SettingsError(
                f"{where} is not a setting of the {plugin} plugin{suggestion(name, set(model.model_fields))}"
            )
    settings, origins = build(model, layers)
    active.built[table] = (plugin, Built(settings, origins))
    return settings


def environment_hub_names() -> dict[str, str]:
    """The ``HUB_*`` variables of this process: upper-cased name -> the name as set."""
    return {name.upper(): name for name in os.environ if name.upper().startswith("HUB_")}
