"""Schema drift: compare each payload's fields and JSON types with what the source model expects."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

import orjson
from pydantic import BaseModel

JSON_TYPE_NAMES: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


@dataclass(frozen=True)
class FieldSpec:
    """What one field may look like: its JSON types, whether required, and a nested spec."""

    types: frozenset[str]
    required: bool
    nested: ExpectedSchema | None = None
    nested_is_map: bool = False


@dataclass(frozen=True)
class ExpectedSchema:
    fields: dict[str, FieldSpec]


@dataclass(frozen=True)
class DriftEvent:
    field: str
    kind: str  # missing | new | type_changed
    expected: str | None
    observed: str | None
    sample_value: str | None


def _json_types(annotation: Any) -> tuple[set[str], type[BaseModel] | None, bool]:
    """JSON types a Python annotation accepts, plus a nested model (and whether it is a map of them)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _json_types(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        found: set[str] = set()
        nested: type[BaseModel] | None = None
        is_map = False
        for arg in typing.get_args(annotation):
            arg_types, arg_nested, arg_map = _json_types(arg)
            found |= arg_types
            nested = nested or arg_nested
            is_map = is_map or arg_map
        return found, nested, is_map
    if origin is dict:
        value_type = typing.get_args(annotation)[1]
        _, nested, _ = _json_types(value_type)
        return {"object"}, nested, nested is not None
    if origin is list:
        return {"array"}, None, False
    if annotation is type(None):
        return {"null"}, None, False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"object"}, annotation, False
    if annotation is float:
        return {"number", "integer"}, None, False
    if annotation is int:
        return {"integer"}, None, False
    if annotation is bool:
        return {"boolean"}, None, False
    if annotation in (str, datetime):
        return {"string"}, None, False
    return {"string", "number", "integer", "object", "array", "boolean"}, None, False


def expected_schema(model: type[BaseModel]) -> ExpectedSchema:
    """Derive the expected payload shape from a Pydantic source model."""
    fields: dict[str, FieldSpec] = {}
    for name, info in model.model_fields.items():
        json_types, nested, is_map = _json_types(info.annotation)
        if not info.is_required():
            json_types.add("null")
        fields[name] = FieldSpec(
            types=frozenset(json_types),
            required=info.is_required(),
            nested=expected_schema(nested) if nested else None,
            nested_is_map=is_map,
        )
    return ExpectedSchema(fields)


def _sample(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text[:200]


class DriftDetector:
    """Finds drift in payloads; reports each distinct change once per detector (one per run)."""

    def __init__(self, schema: ExpectedSchema, *, ignore_types: bool = False) -> None:
        self.schema = schema
        self.ignore_types = ignore_types
        self._seen_signatures: set[Any] = set()
        self._reported: set[tuple[str, str]] = set()

    def observe(self, payload: Any) -> list[DriftEvent]:
        """New drift events in this payload (already reported ones are not repeated)."""
        if not isinstance(payload, dict):
            return self._report(
                [
                    DriftEvent(
                        "$",
                        "type_changed",
                        "object",
                        JSON_TYPE_NAMES.get(type(payload), "unknown"),
                        _sample(payload),
                    )
                ]
            )
        signature = _signature(payload)
        if signature in self._seen_signatures:
            return []
        self._seen_signatures.add(signature)
        return self._report(self._compare(self.schema, payload, prefix=""))

    def _report(self, events: list[DriftEvent]) -> list[DriftEvent]:
        fresh = []
        for event in events:
            key = (event.field, event.kind)
            if key not in self._reported:
                self._reported.add(key)
                fresh.append(event)
        return fresh

    def _compare(
        self, schema: ExpectedSchema, payload: dict[str, Any], prefix: str
    ) -> list[DriftEvent]:
        events: list[DriftEvent] = []
        for name, spec in schema.fields.items():
            path = prefix + name
            if name not in payload:
                kind_expected = "|".join(sorted(spec.types))
                events.append(DriftEvent(path, "missing", kind_expected, None, None))
                continue
            value = payload[name]
            observed = JSON_TYPE_NAMES.get(type(value), "unknown")
            if not self.ignore_types and observed not in spec.types:
                events.append(
                    DriftEvent(
                        path, "type_changed", "|".join(sorted(spec.types)), observed, _sample(value)
                    )
                )
                continue
            if spec.nested is not None and isinstance(value, dict):
                if spec.nested_is_map:
                    for key, item in value.items():
                        if isinstance(item, dict):
                            events.extend(self._compare(spec.nested, item, f"{path}.{key}."))
                else:
                    events.extend(self._compare(spec.nested, value, path + "."))
        for name in payload:
            if name not in schema.fields:
                observed = JSON_TYPE_NAMES.get(type(payload[name]), "unknown")
                events.append(
                    DriftEvent(prefix + name, "new", None, observed, _sample(payload[name]))
                )
        return events


def _signature(payload: dict[str, Any]) -> tuple[Any, ...]:
    """Field names and value types, recursively for nested objects: equal signatures drift alike."""
    types_ = tuple(map(type, payload.values()))
    nested = (
        tuple(_signature(v) for v in payload.values() if type(v) is dict) if dict in types_ else ()
    )
    return (tuple(payload), types_, nested)
