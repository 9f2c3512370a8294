"""TypeScript interfaces of the verdict, generated from ``verdict.schema.json``.

The lab extension imports ``extensions/src/verdictTypes.ts``, which this module writes; a
test fails when the committed file differs from what the schema generates, and another
validates the server's verdicts against the schema, so the TypeScript types and the JSON the
server sends are pinned to each other. Regenerate with::

    python -m workbench.verdict.typescript > extensions/src/verdictTypes.ts

Only the parts of JSON Schema the verdict's schema uses are understood (objects with
properties, arrays, maps, ``$ref`` into ``$defs``, type lists, ``oneOf``, ``enum``,
``const``); anything else is an error rather than a silently wrong type.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMA_NAME = "verdict.schema.json"
TS_PATH = "extensions/src/verdictTypes.ts"
_SCALARS = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean",
            "null": "null"}
_REF_PREFIX = "#/$defs/"


def load_schema() -> dict[str, Any]:
    return json.loads(resources.files("workbench.verdict").joinpath(SCHEMA_NAME).read_text())


def _interface_name(definition: str) -> str:
    return f"I{definition}"


def _type(schema: dict[str, Any], indent: str) -> str:
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith(_REF_PREFIX):
            raise ValueError(f"unsupported $ref {ref!r}")
        return _interface_name(ref.removeprefix(_REF_PREFIX))
    if "oneOf" in schema:
        return " | ".join(_type(part, indent) for part in schema["oneOf"])
    if "enum" in schema:
        return " | ".join(json.dumps(v).replace('"', "'") for v in schema["enum"])
    kind = schema.get("type")
    if kind is None:
        if set(schema) - {"description"}:
            raise ValueError(f"unsupported schema {schema!r}")
        return "unknown"
    if isinstance(kind, list):
        return " | ".join(_type({**schema, "type": k}, indent) for k in kind)
    if kind == "array":
        item = _type(schema["items"], indent)
        return f"Array<{item}>" if " " in item else f"{item}[]"
    if kind == "object":
        return _object(schema, indent)
    if kind not in _SCALARS:
        raise ValueError(f"unsupported type {kind!r}")
    return _SCALARS[kind]


def _object(schema: dict[str, Any], indent: str) -> str:
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    if properties is None:
        value = _type(extra, indent) if isinstance(extra, dict) else "unknown"
        return f"{{ [key: string]: {value} }}"
    if isinstance(extra, dict):
        raise ValueError("objects with both properties and a map type are not supported")
    required = set(schema.get("required", ()))
    inner = indent + "  "
    lines = ["{"]
    for name, sub in properties.items():
        if "description" in sub:
            lines.append(f"{inner}/** {sub['description']} */")
        optional = "" if name in required else "?"
        lines.append(f"{inner}{name}{optional}: {_type(sub, inner)};")
    if extra is not False:
        lines.append(f"{inner}[key: string]: unknown;")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def _declaration(name: str, schema: dict[str, Any]) -> str:
    doc = f"/** {schema['description']} */\n" if "description" in schema else ""
    body = _type(schema, "")
    if body.startswith("{"):
        return f"{doc}export interface {name} {body}\n"
    return f"{doc}export type {name} = {body};\n"


def generate(schema: dict[str, Any] | None = None) -> str:
    schema = schema or load_schema()
    parts = [
        "/*\n * Generated from workbench/verdict/verdict.schema.json by\n"
        " * `python -m workbench.verdict.typescript`; do not edit by hand.\n */\n",
    ]
    for name, definition in schema.get("$defs", {}).items():
        parts.append(_declaration(_interface_name(name), definition))
    parts.append(_declaration(_interface_name(schema.get("title", "Root")), schema))
    return "\n".join(parts)


if __name__ == "__main__":
    print(generate(), end="")
