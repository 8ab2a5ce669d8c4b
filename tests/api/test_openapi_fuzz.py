"""Property-based fuzzing of the whole API from its OpenAPI schema: no 5xx, every response conforms."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.conftest import ClientFactory, Seeded


def test_api_conforms_to_its_schema(make_client: ClientFactory, seeded: Seeded) -> None:
    """Every operation, a few generated cases each: no 5xx, status, headers and bodies as documented."""
    client = make_client()
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: Any) -> None:
            # cursor tampering and cursor+page clashes are 422 by design; the schema cannot express them
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()


def _undocumented(spec: dict[str, Any]) -> list[str]:
    """Operations, parameters and schema properties without a description (or parameter examples).

    A property that only refers to another schema (``$ref``, ``allOf``/``anyOf``, arrays of
    those) counts as documented when every schema it refers to has a description of its own.
    """
    schemas = spec.get("components", {}).get("schemas", {})

    def documented(prop: dict[str, Any]) -> bool:
        if prop.get("description"):
            return True
        if "$ref" in prop:
            return bool(schemas.get(prop["$ref"].rsplit("/", 1)[-1], {}).get("description"))
        members = [
            m
            for key in ("allOf", "anyOf", "oneOf")
            for m in prop.get(key, [])
            if m.get("type") != "null"
        ]
        if members:
            return all(documented(m) for m in members)
        if prop.get("type") == "array" and "items" in prop:
            return documented(prop["items"])
        return False

    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not (operation.get("description") or operation.get("summary")):
                missing.append(f"{method} {path}")
            for param in operation.get("parameters", []):
                if not param.get("description"):
                    missing.append(f"{method} {path} {param['name']}: description")
                if not (
                    param.get("examples") or param["schema"].get("examples") or param.get("example")
                ):
                    missing.append(f"{method} {path} {param['name']}: examples")
    for name, model in schemas.items():
        if name in ("ValidationError", "HTTPValidationError"):
            continue
        for field, prop in model.get("properties", {}).items():
            if not documented(prop):
                missing.append(f"{name}.{field}")
    return missing


def test_the_documentation_check_finds_gaps() -> None:
    spec = {
        "paths": {"/x": {"get": {"summary": "X", "parameters": [{"name": "q", "schema": {}}]}}},
        "components": {
            "schemas": {
                "Bare": {"properties": {"n": {"type": "integer"}}},
                "Outer": {
                    "description": "Has refs.",
                    "properties": {
                        "ref": {"$ref": "#/components/schemas/Bare"},
                        "opt": {"anyOf": [{"$ref": "#/components/schemas/Bare"}, {"type": "null"}]},
                        "many": {"type": "array", "items": {"$ref": "#/components/schemas/Bare"}},
                        "ok": {"$ref": "#/components/schemas/Outer"},
                    },
                },
            }
        },
    }
    assert _undocumented(spec) == [
        "get /x q: description",
        "get /x q: examples",
        "Bare.n",
        "Outer.ref",
        "Outer.opt",
        "Outer.many",
    ]


def test_every_parameter_and_field_is_documented(make_client: ClientFactory) -> None:
    spec = make_client().get("/openapi.json").json()
    assert _undocumented(spec) == []
