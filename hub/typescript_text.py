"""TypeScript source text for hub/schema_typescript.py: comments, tables, unions, literals, keys and identifiers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

IDENTIFIER_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
SIMPLE_TYPE_RE = re.compile(r"[\w.$]+(\[\])*|\"(?:[^\"\\]|\\.)*\"")


def comment(paragraphs: Iterable[str], indent: str) -> list[str]:
    text = "\n".join(p.replace("``", "`").replace("*/", "*\\/").strip() for p in paragraphs if p and p.strip())
    if not text:
        return []
    lines = text.splitlines()
    if len(lines) == 1:
        return [f"{indent}/** {lines[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {line}".rstrip() for line in lines), f"{indent} */"]


def table(name: str, about: str, rows: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return [f"  /** {about} None. */", f"  export interface {name} {{}}", ""]
    lines = [f"  /** {about} */", f"  export interface {name} {{"]
    lines += [f"    {key(message_type)}: {type_};" for message_type, type_ in rows]
    return [*lines, "  }", ""]


def union(types: Iterable[str]) -> str:
    unique = list(dict.fromkeys(types))
    if "unknown" in unique:
        return "unknown"
    return " | ".join(unique) or "never"


def grouped(type_: str) -> str:
    """A type to put before ``[]`` or beside ``&``: parenthesized unless it is one name, literal, object or tuple."""
    return type_ if SIMPLE_TYPE_RE.fullmatch(type_) or is_bracketed(type_) else f"({type_})"


def is_bracketed(type_: str) -> bool:
    """``{...}`` or ``[...]`` whose first bracket closes at the very end (so not ``{a: 1} | {b: 2}``)."""
    if not type_ or type_[0] not in "{[":
        return False
    depth, quoted, escaped = 0, False, False
    for i, char in enumerate(type_):
        if quoted:
            quoted, escaped = (char != '"' or escaped), (char == "\\" and not escaped)
        elif char == '"':
            quoted = True
        elif char in "{[(":
            depth += 1
        elif char in "}])":
            depth -= 1
            if depth == 0:
                return i == len(type_) - 1
    return False


def literal(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{ " + " ".join(f"{key(str(k))}: {literal(v)};" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def key(name: str) -> str:
    return name if IDENTIFIER_RE.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def identifier(title: str) -> str:
    """A declaration name from a model's title: ``SendMessage`` stays, ``Scale X`` becomes ``ScaleX``."""
    words = re.findall(r"[A-Za-z0-9_$]+", title)
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    return name if not name[0].isdigit() else f"_{name}"


def pascal(namespace: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in namespace.split("_") if part) or "Channel"
