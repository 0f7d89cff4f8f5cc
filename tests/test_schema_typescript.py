"""hub.schema_typescript and ``hub schema --format typescript``: a plugin's models of every kind pydantic describes
(strings, numbers, literals, enums, tuples, dicts, discriminated unions, recursive models, Any, excluded fields)
become declarations that tsc accepts exactly where the hub would: a TypeScript file of values the models take
compiles, and a file of values they refuse fails with the error each line names. Names: the same model twice is
declared once, two models of one name are numbered, reserved names are avoided, and so on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from hub import Channel, Context
from hub.cli import cli
from hub.router import Router
from hub.schema import hub_schema
from hub.schema_typescript import typescript_declarations

ROOT = Path(__file__).resolve().parent.parent
TSC = ROOT / "node_modules" / "typescript" / "bin" / "tsc"
EXPECTED_ERROR_RE = re.compile(r"// expect (TS\d+)$")
TSC_ERROR_RE = re.compile(r"^(?P<file>[^(\s]+)\((?P<line>\d+),\d+\): error (?P<code>TS\d+):", re.MULTILINE)
STRICT = ["--strict", "--noEmit", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext"]


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"


class Circle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["circle"]
    r: float


class Square(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["square"]
    side: int


class Tree(BaseModel):
    label: str
    children: list[Tree] = Field(default_factory=list)


class Put(BaseModel):
    """Every kind of field. */ A comment that tries to end the comment early."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=20, description="a name")
    count: int = Field(ge=0)
    ratio: float | None = None
    flag: bool = False
    color: Color
    mode: Literal["a", "b"] = "a"
    point: tuple[int, int]
    rest: tuple[int, ...] = ()
    tags: list[str] = Field(default_factory=list)
    scores: dict[str, int] = Field(default_factory=dict)
    shape: Annotated[Circle | Square, Field(discriminator="kind")]
    tree: Tree | None = None
    anything: Any = None
    nested: dict[str, list[tuple[int, str]]] = Field(default_factory=dict)
    content_type: str = Field(default="text/plain", alias="content-type")


class Ping(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Shown(BaseModel):
    text: str
    note: str | None = None
    hidden: str = Field(default="", exclude=True)


def kinds_channel() -> Channel:
    channel = Channel("kinds", description="Every kind of field.")

    @channel.on("kinds.put", Put)
    async def put(ctx: Context, message: Put) -> None:
        return None

    @channel.on("kinds.ping", Ping)
    async def ping(ctx: Context, message: Ping) -> None:
        return None

    channel.event("kinds.shown", Shown)
    channel.event("kinds.tree", Tree)

    @channel.snapshot
    async def tree(ctx: Context) -> Tree | None:
        return None

    return channel


@pytest.fixture(scope="module")
def declarations() -> str:
    router = Router([("kinds", kinds_channel())], max_channel_length=1024)
    return typescript_declarations(hub_schema(router))


def compile_ts(directory: Path, declarations: str, source: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not TSC.exists():
        pytest.fail("these tests need Node.js (Debian package nodejs) and `npm ci` (typescript; scripts/setup)")
    (directory / "package.json").write_text('{"type": "module"}')
    (directory / "channels.d.ts").write_text(declarations)
    (directory / "use.ts").write_text(source)
    return subprocess.run(
        [node, str(TSC), *STRICT, "use.ts"], cwd=directory, capture_output=True, text=True, timeout=180, check=False
    )


PRELUDE = """\
import type { HubChannels, Kinds } from "./channels.js";
type Put = HubChannels["kinds"]["messages"]["kinds.put"];
type Ping = HubChannels["kinds"]["messages"]["kinds.ping"];
type Shown = HubChannels["kinds"]["events"]["kinds.shown"];
const base: Put = { name: "x", count: 1, color: "red", point: [1, 2], shape: { kind: "circle", r: 1.5 } };
"""

TAKEN = (
    PRELUDE
    + """\
export const full: Put = {
  ...base, ratio: null, flag: true, mode: "b", rest: [1, 2, 3], tags: ["t"], scores: { a: 1 },
  shape: { kind: "square", side: 2 }, tree: { label: "t", children: [{ label: "u", children: [] }] },
  anything: { any: [1, "thing"] }, nested: { k: [[1, "a"]] }, "content-type": "text/html",
};
export const ping: Ping = {};
export const empty: Kinds.Messages["kinds.ping"] = {};
export const shown: Shown = { text: "hi", note: null };
export function read(event: Shown, tree: HubChannels["kinds"]["events"]["kinds.tree"]): string {
  return event.text + (event.note ?? "") + tree.children.map((child) => child.label).join();
}
export const snapshot: HubChannels["kinds"]["snapshot"] = null;
export const tree: Kinds.Snapshot = { label: "root", children: [] };
export const kinds: (keyof Kinds.Messages)[] = ["kinds.put", "kinds.ping"];
export { base };
"""
)

REFUSED = (
    PRELUDE
    + """\
export const a: Put = { ...base, color: "green" }; // expect TS2322
export const b: Put = { ...base, point: [1, 2, 3] }; // expect TS2322
export const c: Put = { ...base, point: [1] }; // expect TS2322
export const d: Put = { ...base, shape: { kind: "circle", side: 1 } }; // expect TS2353
export const e: Put = { ...base, mode: "c" }; // expect TS2322
export const f: Put = { ...base, scores: { a: "1" } }; // expect TS2322
export const g: Put = { ...base, tree: { label: "t", children: [{ label: 1, children: [] }] } }; // expect TS2322
export const h: Ping = { x: 1 }; // expect TS2322
export const i: Shown = { text: "x" }; // expect TS2741
export const j: Shown = { text: "x", note: null, hidden: "" }; // expect TS2353
export const k: Put = { ...base, count: "1" }; // expect TS2322
export const l: Put = { ...base, content_type: "text/html" }; // expect TS2561
export const m: HubChannels["kinds"]["messages"]["kinds.nope"] = {}; // expect TS2339
export const n: Kinds.Snapshot = { label: "root" }; // expect TS2741
"""
)


def test_values_the_models_take_compile(declarations: str, tmp_path: Path) -> None:
    compiled = compile_ts(tmp_path, declarations, TAKEN)
    assert compiled.returncode == 0, compiled.stdout + declarations


def test_values_the_models_refuse_are_each_the_error_named(declarations: str, tmp_path: Path) -> None:
    expected = {(n, m[1]) for n, line in enumerate(REFUSED.splitlines(), 1) if (m := EXPECTED_ERROR_RE.search(line))}
    compiled = compile_ts(tmp_path, declarations, REFUSED)
    found = {(int(m["line"]), m["code"]) for m in TSC_ERROR_RE.finditer(compiled.stdout)}
    assert found == expected, compiled.stdout


def test_the_declarations_say_what_types_cannot(declarations: str) -> None:
    assert (
        "    /**\n     * a name\n     * Schema: minLength 1, maxLength 20.\n     */\n    name: string;" in declarations
    )
    assert "/** Schema: integer, minimum 0. */\n    count: number;" in declarations
    assert "*\\/ A comment that tries to end the comment early." in declarations  # no early end of the comment
    assert '"content-type"?: string;' in declarations
    assert "point: [number, number];" in declarations
    assert "rest?: number[];" in declarations
    assert "nested?: {\n      [key: string]: [number, string][];\n    };" in declarations
    assert "shape: Circle | Square;" in declarations
    assert 'export type Color = "red" | "blue";' in declarations
    # the same model inbound (a default: optional) and outbound (always sent): two declarations
    assert "export interface Tree {\n    label: string;\n    children?: Tree[];\n  }" in declarations
    assert "export interface Tree2 {\n    label: string;\n    children: Tree2[];\n  }" in declarations
    assert "export type Snapshot = Tree2 | null;" in declarations
    assert "export interface Shown {\n    text: string;\n    note: string | null;\n  }" in declarations  # no hidden


def document(channels: dict[str, Any]) -> dict[str, Any]:
    return {"protocol": 1, "channels": channels}


def channel(messages: dict[str, Any] | None = None, events: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"plugin": "p", "channel": "p:<room>", "messages": messages or {}, "events": events or {}, "snapshot": None}


def model(title: str, properties: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = {"title": title, "type": "object", "properties": properties, "required": sorted(properties)}
    return {**schema, "$defs": defs} if defs else schema


def test_one_model_in_many_schemas_is_declared_once_and_two_of_one_name_are_numbered() -> None:
    author = model("Author", {"name": {"type": "string"}})
    other_author = model("Author", {"id": {"type": "integer"}})
    text = typescript_declarations(
        document(
            {
                "p": channel(
                    messages={"p.a": model("A", {"by": {"$ref": "#/$defs/Author"}}, {"Author": author})},
                    events={
                        "p.b": model("B", {"by": {"$ref": "#/$defs/Author"}}, {"Author": author}),
                        "p.c": model("C", {"by": {"$ref": "#/$defs/Author"}}, {"Author": other_author}),
                        "p.d": model("Messages", {}),
                    },
                )
            }
        )
    )
    assert text.count("export interface Author {") == 1
    assert "export interface Author2 {\n    /** Schema: integer. */\n    id: number;" in text
    assert "by: Author2;" in text
    assert "export interface Messages2 {" in text  # Messages is the table's name
    assert '"p.d": Messages2;' in text


def test_namespaces_are_pascal_case_and_never_collide() -> None:
    text = typescript_declarations(
        document({"a_b": channel(), "a__b": channel(), "hub_channels": channel(), "chat": channel()})
    )
    assert "export namespace AB {" in text
    assert "export namespace AB2 {" in text
    assert "export namespace HubChannels2 {" in text  # HubChannels is the map's name
    assert "export interface Messages {}" in text  # no inbound types: publish takes none
    assert "  a__b: { messages: AB.Messages; events: AB.Events; snapshot: AB.Snapshot };" in text
    assert "  a_b: { messages: AB2.Messages; events: AB2.Events; snapshot: AB2.Snapshot };" in text
    assert "  hub_channels: { messages: HubChannels2.Messages;" in text


def test_unions_in_arrays_are_parenthesized(tmp_path: Path) -> None:
    either = {"anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}]}
    pair = {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "minItems": 1, "maxItems": 2}
    open_pair = {"type": "array", "prefixItems": [{"type": "string"}], "minItems": 1}  # then anything
    schema = model(
        "U",
        {
            "list": {"type": "array", "items": either},
            "pairs": {"type": "array", "items": pair},
            "open": open_pair,
            "odd": {"enum": ["a]", 'b"', 1, None]},
            "free": {"type": "object"},
        },
        {"X": model("X", {"x": {"type": "string"}})},
    )
    text = typescript_declarations(document({"p": channel(events={"p.u": schema})}))
    assert "list: (X | null)[];" in text
    assert "pairs: [string, number?][];" in text
    assert "open: [string, ...unknown[]];" in text
    assert 'odd: "a]" | "b\\"" | 1 | null;' in text
    assert "free: {\n      [key: string]: unknown;\n    };" in text
    source = 'import type { P } from "./channels.js";\nexport const u: P.Events["p.u"] = '
    source += (
        '{ list: [{ x: "1" }, null], pairs: [["a"], ["b", 2]], open: ["a", 1, {}], odd: \'b"\', free: { any: 1 } };\n'
    )
    compiled = compile_ts(tmp_path, text, source)
    assert compiled.returncode == 0, compiled.stdout + text


def test_hub_schema_format_typescript_prints_the_declarations() -> None:
    result = CliRunner().invoke(cli, ["schema", "--plugins", "chat", "--format", "typescript"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("// What every channel of this hub carries (protocol 1)")
    assert '"chat.send": SendMessage;' in result.output
    assert "  chat: { messages: Chat.Messages; events: Chat.Events; snapshot: Chat.Snapshot };" in result.output
    assert json.loads(CliRunner().invoke(cli, ["schema", "--plugins", "chat"]).output)["protocol"] == 1  # default


def test_an_unknown_format_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["schema", "--format", "yaml"])
    assert result.exit_code == 2
    assert "'yaml' is not one of 'json', 'typescript'" in result.output
