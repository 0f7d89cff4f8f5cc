"""The npm package @hub-realtime/client (sdk/): packed with npm (its build copies hub/static/hub.js and has tsc make
hub.d.ts from the JSDoc, type-checking the file), installed from the tarball into a new app, its typed example
compiled under --strict against the channel types ``hub schema --format typescript`` writes, its mistakes file
refused with exactly the TypeScript errors it names, and the typed example run against a real hub. The packed
hub.js is the file the hub serves at /hub.js, byte for byte. Node.js and ``npm ci`` (scripts/setup) are needed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub.protocol import PROTOCOL_VERSION, SUBPROTOCOL
from hub.testing import HubServer

ROOT = Path(__file__).resolve().parent.parent
SDK = ROOT / "sdk"
HUB_JS = ROOT / "hub" / "static" / "hub.js"
TSC = ROOT / "node_modules" / "typescript" / "bin" / "tsc"
EXPECTED_ERROR_RE = re.compile(r"// expect (TS\d+)$")
TSC_ERROR_RE = re.compile(r"^(?P<file>[^(\s]+)\((?P<line>\d+),\d+\): error (?P<code>TS\d+):", re.MULTILINE)


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"the SDK package tests need {name} (Debian packages nodejs and npm) and `npm ci` (scripts/setup)")
    if not TSC.exists():
        pytest.fail("typescript is missing from node_modules: run scripts/setup (npm ci)")
    return found


def run(args: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=180, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def tsc(app: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([tool("node"), str(TSC), *args], app, check=check)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``npm pack`` of sdk/: its prepack script builds dist/ first."""
    out = tmp_path_factory.mktemp("pack")
    packed = run([tool("npm"), "pack", "--json", "--pack-destination", str(out)], SDK)
    report = json.loads(packed.stdout[packed.stdout.index("[") :])  # after the prepack script's own lines, if any
    return out / str(report[0]["filename"])


@pytest.fixture(scope="module")
def app(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new app with the tarball installed, the examples, and the channel types of the installed plugins."""
    app = tmp_path_factory.mktemp("app")
    (app / "package.json").write_text(json.dumps({"name": "typed-app", "private": True, "type": "module"}))
    run([tool("npm"), "install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", str(tarball)], app)
    for example in ("typed.ts", "wrong-field.ts", "tsconfig.json"):
        shutil.copy(SDK / "examples" / example, app / example)
    schema = run([sys.executable, "-c", "from hub.cli import main; main()", "schema", "--format", "typescript"], app)
    (app / "hub-channels.d.ts").write_text(schema.stdout)
    return app


def test_the_package_version_is_the_protocol_version() -> None:
    package = json.loads((SDK / "package.json").read_text())
    assert int(package["version"].split(".")[0]) == PROTOCOL_VERSION
    assert package["hub"] == {"protocol": PROTOCOL_VERSION, "subprotocol": SUBPROTOCOL}
    assert f'const SUBPROTOCOL = "{SUBPROTOCOL}";' in HUB_JS.read_text()  # what the packed file speaks


def test_the_tarball_holds_the_file_the_hub_serves_and_its_declarations(
    tarball: Path, hub_server: Callable[..., HubServer]
) -> None:
    with tarfile.open(tarball) as packed:
        names = sorted(packed.getnames())
        packed_js = packed.extractfile("package/dist/hub.js").read()  # type: ignore[union-attr]
        declarations = packed.extractfile("package/dist/hub.d.ts").read().decode()  # type: ignore[union-attr]
        manifest = json.loads(packed.extractfile("package/package.json").read())  # type: ignore[union-attr]
    assert names == ["package/README.md", "package/dist/hub.d.ts", "package/dist/hub.js", "package/package.json"]
    assert manifest["exports"]["."] == {"types": "./dist/hub.d.ts", "default": "./dist/hub.js"}
    assert manifest["type"] == "module"
    assert packed_js == HUB_JS.read_bytes()
    server = hub_server()
    with urllib.request.urlopen(f"{server.url}/hub.js", timeout=10) as response:
        assert response.read() == packed_js
    for declaration in (
        "export function connect<S = UntypedChannels>(options?: HubOptions): Hub<S>;",
        "export class Hub<S = UntypedChannels> {",
        "export class HubError extends Error {",
        "publish<C extends ChannelName<S>, T extends keyof MessagesOf<ChannelOf<S, C>> & string>(channel: C, type: T",
        "subscribe<C extends ChannelName<S>>(channel: C, handlers?: SubscribeHandlers<ChannelOf<S, C>>)",
    ):
        assert declaration in declarations


@pytest.fixture(scope="module")
def compiled(app: Path) -> subprocess.CompletedProcess[str]:
    """typed.ts compiled by its tsconfig (strict, module nodenext: as a Node app builds it) into out/."""
    return tsc(app, "--project", "tsconfig.json", "--noEmit", "false", "--outDir", "out", check=False)


def test_the_typed_example_compiles_under_strict(app: Path, compiled: subprocess.CompletedProcess[str]) -> None:
    assert compiled.returncode == 0, compiled.stdout
    assert (app / "out" / "typed.js").exists()


def test_the_typed_example_compiles_as_a_bundled_browser_app_would(app: Path) -> None:
    tsc(app, "--project", "tsconfig.json", "--module", "esnext", "--moduleResolution", "bundler")


def test_each_mistake_is_the_typescript_error_it_names(app: Path) -> None:
    """wrong-field.ts: a field the message lacks, a missing one, one of the wrong type, an unknown message type or
    namespace, an unknown event, a field its data lacks — each line the error its comment names, and no other."""
    source = (app / "wrong-field.ts").read_text().splitlines()
    expected = {(n, m[1]) for n, line in enumerate(source, 1) if (m := EXPECTED_ERROR_RE.search(line))}
    assert len(expected) == 8
    (app / "tsconfig.mistakes.json").write_text(json.dumps({"extends": "./tsconfig.json", "files": ["wrong-field.ts"]}))
    compiled = tsc(app, "--project", "tsconfig.mistakes.json", check=False)
    found = {(int(m["line"]), m["code"]) for m in TSC_ERROR_RE.finditer(compiled.stdout)}
    assert compiled.returncode == 2, compiled.stdout
    assert found == expected, compiled.stdout


def test_the_typed_example_runs_against_a_real_hub(
    app: Path, compiled: subprocess.CompletedProcess[str], hub_server: Callable[..., HubServer]
) -> None:
    """Compiled to JavaScript and run in Node: the packed package resolves by its exports, connects, subscribes,
    publishes and gets its own message back, and a refused publish rejects with the hub's code."""
    assert compiled.returncode == 0, compiled.stdout
    (app / "run.mjs").write_text(
        'import { postAndEcho } from "./out/typed.js";\n'
        "const [url, token, room, text] = process.argv.slice(2);\n"
        "console.log(JSON.stringify(await postAndEcho(url, token, room, text)));\n"
    )
    server = hub_server()
    node = [tool("node")]
    if run([*node, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"], app, check=False).returncode:
        node.append("--experimental-websocket")  # Node 20: the WebSocket of Node 22+, behind a flag
    first = _run_example(node, app, server, "hello from a typed app")
    assert first["posted"]["text"] == "hello from a typed app"
    assert first["posted"]["author"] == {"user": "alice", "name": "alice"}
    assert first["earlier"] == 0
    assert first["refused"] == "not_found"
    second = _run_example(node, app, server, "and again")
    assert second["earlier"] == 1  # the first message, in the snapshot


def _run_example(node: list[str], app: Path, server: HubServer, text: str) -> dict[str, Any]:
    done = run([*node, "run.mjs", server.ws_url, server.token("alice"), "lobby", text], app)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
