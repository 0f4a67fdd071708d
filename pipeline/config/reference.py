"""The params reference: a Markdown table of every key, generated from the schema."""

from __future__ import annotations

import json
from typing import Any

from pipeline.config.params import Params


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``params.yaml``."""
    return Params.model_json_schema()


_LIMITS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<",
           "minItems": "items >=", "minLength": "items >="}


def _type_of(prop: dict[str, Any]) -> str:
    """A short human type for one JSON Schema property."""
    if "enum" in prop:
        return " \\| ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " or ".join(_type_of(p) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        items = prop.get("prefixItems") or [prop.get("items", {})]
        kind = f"[{', '.join(_type_of(i) for i in items)}]"
    limits = [f"{op} {prop[k]}" for k, op in _LIMITS.items() if k in prop]
    return f"{kind} ({', '.join(limits)})" if limits else kind


def _rows(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> list[list[str]]:
    rows = []
    for name, prop in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        ref = prop.get("$ref") or (prop.get("allOf") or [{}])[0].get("$ref")
        if ref:
            section = schema["$defs"][ref.rsplit("/", 1)[-1]]
            doc = (section.get("description") or "").strip().splitlines()
            rows.append([f"`{key}`", "section", "", doc[0] if doc else ""])
            rows.extend(_rows(schema, section, f"{key}."))
            continue
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        rows.append([f"`{key}`", _type_of(prop), default, prop.get("description", "")])
    return rows


def reference_markdown() -> str:
    """A Markdown table of every params key: type and limits, default, meaning."""
    schema = json_schema()
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for row in _rows(schema, schema, ""):
        lines.append("| " + " | ".join(cell.replace("\n", " ") for cell in row) + " |")
    return "\n".join(lines)


REFERENCE_MARKERS = ("<!-- params-reference:start -->", "<!-- params-reference:end -->")


def replace_reference(text: str) -> str:
    """``text`` with the table between the params-reference markers regenerated."""
    start, end = REFERENCE_MARKERS
    head, sep, rest = text.partition(start)
    _, sep2, tail = rest.partition(end)
    if not sep or not sep2:
        raise ValueError(f"markers {start} ... {end} not found")
    return f"{head}{start}\n{reference_markdown()}\n{end}{tail}"
