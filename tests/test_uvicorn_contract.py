"""The uvicorn contract: every uvicorn internal the hub relies on (hub/uvicorn_internals.py) is still there, with the
parameters the hub's overrides and calls expect, on the installed uvicorn; and hub/server.py and hub/http_protocol.py
use no uvicorn internal that the list leaves out. Run it before raising uvicorn's pin in pyproject.toml."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from hub.server import uvicorn_config
from hub.settings import HubSettings
from hub.uvicorn_internals import CONFIG, CYCLE, H11, SERVER, UVICORN_INTERNALS, WS, WS_CONN, Internal

HUB = Path(__file__).resolve().parent.parent / "hub"
USERS = (HUB / "server.py", HUB / "http_protocol.py")  # the modules that subclass and configure uvicorn
VERSIONS = f"uvicorn {uvicorn.__version__} (websockets {websockets.__version__})"


def resolve(where: str) -> Any:
    """A module (``a.b``) or a class in it (``a.b:C``)."""
    module_name, _, class_name = where.partition(":")
    found: Any = importlib.import_module(module_name)
    return getattr(found, class_name) if class_name else found


def library_classes(cls: type) -> list[type]:
    """``cls`` and its bases that belong to uvicorn or websockets (not asyncio's or the builtins')."""
    return [base for base in cls.__mro__ if base.__module__.split(".")[0] in ("uvicorn", "websockets")]


def assigned_in_source(cls: type, name: str) -> bool:
    """Does any method of ``cls`` (or its library bases) assign ``self.<name>``?"""
    pattern = re.compile(rf"\bself\.{re.escape(name)}\s*(:[^=\n]+)?=[^=]")
    return any(pattern.search(inspect.getsource(base)) for base in library_classes(cls))


def defines(cls: type, name: str) -> bool:
    """Does uvicorn's (or websockets') ``cls`` define ``name``, as a class attribute or one its methods assign?"""
    return any(name in vars(base) for base in library_classes(cls)) or assigned_in_source(cls, name)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app for the config; never called."""


@pytest.fixture
async def instances() -> dict[str, object]:
    """Real uvicorn objects, made from the hub's own config, to look for attributes on."""
    config = uvicorn_config(_app, HubSettings(), port=0)
    ws = WebSocketsSansIOProtocol(config=config, server_state=ServerState(), app_state={})
    http = H11Protocol(config=config, server_state=ServerState(), app_state={})
    return {CONFIG: config, SERVER: uvicorn.Server(config), WS: ws, WS_CONN: ws.conn, H11: http}


def _id(internal: Internal) -> str:
    return f"{internal.where}.{internal.name}"


@pytest.mark.parametrize("internal", UVICORN_INTERNALS, ids=_id)
async def test_internal_is_there(internal: Internal, instances: dict[str, object]) -> None:
    owner = resolve(internal.where)
    instance = instances.get(internal.where)
    if inspect.ismodule(owner) or internal.params is not None:
        present = hasattr(owner, internal.name)
    else:
        present = (instance is not None and hasattr(instance, internal.name)) or defines(owner, internal.name)
    assert present, (
        f"{VERSIONS} has no {internal.where}.{internal.name}, which the hub relies on ({internal.why}); "
        "see hub/uvicorn_internals.py"
    )


@pytest.mark.parametrize("internal", [i for i in UVICORN_INTERNALS if i.params is not None], ids=_id)
def test_internal_takes_the_expected_parameters(internal: Internal) -> None:
    found = getattr(resolve(internal.where), internal.name)
    parameters = [name for name in inspect.signature(found).parameters if name != "self"]
    assert tuple(parameters) == internal.params, (
        f"{VERSIONS}: {internal.where}.{internal.name} now takes {parameters}, the hub expects "
        f"{list(internal.params or ())} ({internal.why}); see hub/uvicorn_internals.py"
    )


@pytest.mark.parametrize("internal", [i for i in UVICORN_INTERNALS if i.replaced_by], ids=_id)
def test_replacement_offers_what_uvicorn_calls(internal: Internal) -> None:
    owner = resolve(internal.where)
    assert internal.replaced_by is not None
    replacement = resolve(internal.replaced_by)
    pattern = re.compile(rf"\bself\.{re.escape(internal.name)}\.(\w+)")
    called = {match for base in library_classes(owner) for match in pattern.findall(inspect.getsource(base))}
    missing = sorted(name for name in called if not hasattr(replacement, name))
    assert called, f"{VERSIONS}: {internal.where} no longer uses self.{internal.name}; see hub/uvicorn_internals.py"
    assert not missing, (
        f"{VERSIONS}: {internal.where} calls {missing} on self.{internal.name}, which the hub's replacement "
        f"{internal.replaced_by} lacks; see hub/uvicorn_internals.py"
    )


@pytest.mark.parametrize("internal", [i for i in UVICORN_INTERNALS if i.source_mentions], ids=_id)
def test_method_still_makes_the_calls_relied_on(internal: Internal) -> None:
    source = inspect.getsource(getattr(resolve(internal.where), internal.name))
    missing = [text for text in internal.source_mentions if text not in source]
    assert not missing, (
        f"{VERSIONS}: {internal.where}.{internal.name} no longer contains {missing}, which the hub relies on "
        f"({internal.why}); see hub/uvicorn_internals.py"
    )


# ---- every use of a uvicorn internal in the hub is on the list ----------------------------------------------------

ATTRIBUTE_OWNERS = {"config": CONFIG, "cycle": CYCLE}  # a name (local or on self) whose attributes belong to uvicorn


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_self(node: ast.expr) -> bool:
    return _is_name(node, "self")


def _uses_in_class(node: ast.ClassDef, owner: str, conn_owner: str | None) -> Iterator[tuple[str, str]]:
    """(where, name) for each ``self.X``, ``super().X``, ``getattr(self, "X")``, ``self.conn.X`` and ``config.X``
    in a class that subclasses uvicorn's ``owner``, and for each method it defines."""
    for child in node.body:
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield owner, child.name
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and _is_name(sub.func, "getattr"):
            target, name = sub.args[0], sub.args[1]
            if _is_self(target) and isinstance(name, ast.Constant):
                yield owner, str(name.value)
        if not isinstance(sub, ast.Attribute):
            continue
        value = sub.value
        if _is_self(value) or (isinstance(value, ast.Call) and _is_name(value.func, "super")):
            yield owner, sub.attr
        elif isinstance(value, ast.Attribute) and _is_self(value.value):
            if value.attr == "conn" and conn_owner is not None:
                yield conn_owner, sub.attr
            elif value.attr in ATTRIBUTE_OWNERS:
                yield ATTRIBUTE_OWNERS[value.attr], sub.attr


def uvicorn_uses(path: Path) -> set[tuple[str, str]]:
    """Every (where, name) in ``path`` that reaches into uvicorn, whether uvicorn defines it or not."""
    tree = ast.parse(path.read_text())
    module = importlib.import_module(f"hub.{path.stem}")
    uses: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "uvicorn":
            uses.update((node.module or "", alias.name) for alias in node.names)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "uvicorn" and node.attr not in uvicorn.__all__:
                uses.add(("uvicorn", node.attr))
            elif node.value.id in ATTRIBUTE_OWNERS:
                uses.add((ATTRIBUTE_OWNERS[node.value.id], node.attr))
        elif isinstance(node, ast.ClassDef):
            bases = [
                base for base in library_classes(getattr(module, node.name)) if base.__module__.startswith("uvicorn")
            ]
            if bases:
                owner = f"{bases[0].__module__}:{bases[0].__qualname__}"
                uses.update(_uses_in_class(node, owner, WS_CONN if owner == WS else None))
    return uses


@pytest.mark.parametrize("path", USERS, ids=lambda path: path.name)
def test_every_uvicorn_internal_used_is_listed(path: Path) -> None:
    """A name counts when uvicorn (or websockets, for the WebSocket protocol's ``conn``) defines it: the hub's own
    attributes on its subclasses are left out, unless uvicorn comes to define one of the same name."""
    listed = {(internal.where, internal.name) for internal in UVICORN_INTERNALS}
    unlisted = sorted(
        (where, name)
        for where, name in uvicorn_uses(path)
        if (where, name) not in listed and (":" not in where or defines(resolve(where), name))
    )
    assert not unlisted, (
        f"{path.name} relies on uvicorn internals missing from hub/uvicorn_internals.py ({VERSIONS}): "
        + ", ".join(f"{where}.{name}" for where, name in unlisted)
    )


def test_the_check_finds_a_use_left_off_the_list() -> None:
    """The scan above sees uvicorn's names through ``self``, ``super()``, ``getattr``, ``conn`` and ``config``."""
    uses = uvicorn_uses(HUB / "server.py") | uvicorn_uses(HUB / "http_protocol.py")
    for expected in [(WS, "frames"), (WS, "scope"), (WS, "handle_connect"), (WS_CONN, "max_message_size")]:
        assert expected in uses
    for expected in [(H11, "cycle"), (CYCLE, "response_started"), (CONFIG, "h11_max_incomplete_event_size")]:
        assert expected in uses
    assert ("uvicorn.supervisors", "Multiprocess") in uses
