"""Property-based fuzzing of the whole API from its OpenAPI schema: no 5xx, every response conforms.

Every check schemathesis has runs, ``positive_data_acceptance`` included: a schema-valid request
must not be answered 422. The few rules the schema cannot express are listed in ``REJECTIONS``;
a 422 is excused only when the request contains what its rule is about and the answer names
that rule.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.conftest import ClientFactory, Seeded

Query = dict[str, Any]


@dataclass(frozen=True)
class Rejection:
    """A 422 the schema cannot describe: for ``operations`` (all when empty), when ``applies``."""

    name: str
    applies: Callable[[Query], bool]
    message: re.Pattern[str]
    operations: tuple[str, ...] = ()


def _cursor_with_position(query: Query) -> bool:
    return "cursor" in query and ("page" in query or "offset" in query)


REJECTIONS = [
    Rejection(
        "a cursor not issued by this API for this sort (cursors are opaque)",
        lambda q: "cursor" in q,
        re.compile(r"^invalid cursor: "),
    ),
    Rejection(
        "cursor, page and offset are mutually exclusive",
        lambda q: _cursor_with_position(q) or ("page" in q and "offset" in q),
        re.compile(r"^use either (cursor or page/offset|page or offset), not both$"),
    ),
    Rejection(
        "a history window must be ordered, representable and at most 5000 buckets",
        lambda q: "from" in q or "to" in q,
        re.compile(r"^('from' must be before 'to'|range too long: .*|timestamp out of range)$"),
        ("GET /assets/{asset_id}/history",),
    ),
    Rejection(
        "compared runs must belong to one source",
        lambda q: True,
        re.compile(r"^runs a and b belong to different sources$"),
        ("GET /runs/compare",),
    ),
]


def excused(case: Any, response: Any) -> str | None:
    """The rule a 422 answer to a schema-valid ``case`` is explained by, if any."""
    if response.status_code != 422:
        return None
    error = orjson.loads(response.content)["error"]
    query = case.query or {}
    for rule in REJECTIONS:
        applies = not rule.operations or case.operation.label in rule.operations
        if applies and rule.applies(query) and rule.message.match(error["message"]):
            return rule.name
    return None


def validate(case: Any, response: Any, **kwargs: Any) -> str | None:
    """Run every check on ``response``; positive data acceptance unless the 422 is excused."""
    rule = excused(case, response)
    excluded = [positive_data_acceptance] if rule else []
    case.validate_response(response, excluded_checks=excluded, **kwargs)
    return rule


def test_api_conforms_to_its_schema(make_client: ClientFactory, seeded: Seeded) -> None:
    """Every operation, a few generated cases each: no 5xx, status, headers and bodies as
    documented, and schema-valid requests accepted."""
    client = make_client()
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    statuses: Counter[int] = Counter()
    answered: Counter[str] = Counter()

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: Any) -> None:
            response = case.call()
            validate(case, response)
            statuses[response.status_code] += 1
            answered[case.operation.label] += response.status_code == 200

        check()

    # every operation that needs no id or required parameter served some generated request
    unanswered = [
        op.label
        for op in operations
        if op.method == "get"
        and not any(p.is_required for p in op.iter_parameters())
        and not answered[op.label]
    ]
    assert unanswered == [], statuses


def _one_pagination_style(input: StepInput) -> None:
    """Keep a schema-valid step to one way of paging: a cursor only when a link supplied it (a
    generated one is never valid), and page or offset, not both. The per-operation test covers
    those rejections; here they would only end scenarios before they reach the links."""
    query, case = input.case.query, input.case
    if not query or case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if ("query", "cursor") not in {
        (str(loc.value), name) for loc, name in input.applied_parameters
    }:
        query.pop("cursor", None)
    if "cursor" in query or "page" in query:
        query.pop("offset", None)
    if "cursor" in query:
        query.pop("page", None)


@pytest.mark.parametrize(
    "examples", [pytest.param(40, id="ci"), pytest.param(400, id="long", marks=pytest.mark.slow)]
)
def test_stateful_walks_along_the_links(
    make_client: ClientFactory, seeded: Seeded, examples: int
) -> None:
    """Scenarios chained along the schema's links (real asset ids, run ids and cursors from
    earlier responses): no 5xx, no schema violation, schema-valid requests accepted."""
    client = make_client()
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    machine = schema.as_state_machine()
    followed: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    excuses: Counter[str] = Counter()

    class Walk(machine):  # type: ignore[misc, valid-type]
        def step(self, input: StepInput) -> StepOutput:
            _one_pagination_style(input)
            output = super().step(input)
            statuses[output.response.status_code] += 1
            if input.transition is not None and input.applied_parameters:
                followed[input.transition.id] += output.response.status_code == 200
            return output

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            rule = validate(
                case,
                response,
                additional_checks=additional_checks,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )
            if rule:
                excuses[rule] += 1

    Walk.run(
        settings=settings(
            max_examples=examples,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
    print(f"steps {sum(statuses.values())} statuses {dict(statuses)} excused {dict(excuses)}")
    print(f"links followed to a 200: {dict(followed)}")
    assert not [s for s in statuses if s >= 500]
    assert sum(followed.values()) > 0, followed  # scenarios did chain real ids


# For each operation that has links, a request whose answer the links can be followed from:
# ids of the seeded market.
LINK_SOURCES: dict[str, tuple[str, str, Query]] = {
    "list_data": ("GET", "/data", {"limit": 2, "sort": "symbol"}),
    "list_assets": ("GET", "/assets", {"limit": 2}),
    "get_asset": ("GET", "/assets/1", {}),
    "get_history": (
        "GET",
        "/assets/1/history",
        {"from": "2024-05-31T00:00:00Z", "to": "2024-06-02T00:00:00Z"},
    ),
    "list_runs": ("GET", "/runs", {"limit": 2}),  # the two newest are both csv runs
    "get_run": ("GET", "/runs/4", {}),
    "compare_runs": ("GET", "/runs/compare", {"a": 3, "b": 4}),
    "list_drift": ("GET", "/drift", {"limit": 1}),
    "trigger_run": ("POST", "/runs", {}),
}
ADMIN_KEY = "admin-key-for-link-tests"


def _evaluate(expression: str, body: Any, query: Query) -> Any:
    """The value of an OpenAPI runtime expression (the forms api/links.py uses)."""
    if expression.startswith("$response.body#/"):
        value = body
        for token in expression.split("#/", 1)[1].split("/"):
            value = value[int(token)] if isinstance(value, list) else value[token]
        return value
    return query[expression.removeprefix("$request.query.")]


def _declared_links(spec: dict[str, Any]) -> int:
    return sum(
        len(response.get("links", {}))
        for item in spec["paths"].values()
        for op in item.values()
        for response in op["responses"].values()
    )


def test_every_link_leads_to_an_answer(make_client: ClientFactory, seeded: Seeded) -> None:
    """Each link, followed from a real answer, yields a request the target serves with 200."""
    client = make_client(admin_api_key=ADMIN_KEY, sources=["csv"])
    spec = client.get("/openapi.json").json()
    operations = {
        op["operationId"]: (method.upper(), path)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    followed = []
    for op_id, (method, source_path, query) in LINK_SOURCES.items():
        template = operations[op_id][1]
        headers = {"X-API-Key": ADMIN_KEY} if method == "POST" else {}
        source = client.request(method, source_path, params=query, headers=headers)
        assert source.status_code in (200, 202), (op_id, source.text)
        response = spec["paths"][template][method.lower()]["responses"][str(source.status_code)]
        for name, link in response["links"].items():
            target_method, target = operations[link["operationId"]]
            params: Query = {}
            for key, expression in link["parameters"].items():
                where, param = key.split(".", 1)
                value = _evaluate(expression, source.json(), query)
                if where == "path":
                    target = target.replace(f"{{{param}}}", str(value))
                else:
                    params[param] = value
            answer = client.request(target_method, target, params=params)
            assert answer.status_code == 200, (op_id, name, target, params, answer.text)
            body = answer.json()
            # a list must not be empty (the link chose real ids); an object must have content
            assert body.get("data", body), (op_id, name, target, params)
            followed.append(f"{op_id}.{name}")
    assert followed
    assert len(followed) == _declared_links(spec)  # every declared link was followed


def test_excused_rejections_need_their_ingredient() -> None:
    """A 422 is excused only by a rule whose input is present and whose message it carries."""

    @dataclass(frozen=True)
    class Op:
        label: str

    @dataclass
    class Case:
        query: Query
        operation: Op = Op("GET /data")

    @dataclass
    class Answer:
        message: str
        status_code: int = 422

        @property
        def content(self) -> bytes:
            return orjson.dumps({"error": {"message": self.message}})

    bad_cursor = Answer("invalid cursor: not a cursor issued by this API")
    assert excused(Case({"cursor": "x"}), bad_cursor)
    assert not excused(Case({}), bad_cursor)
    assert not excused(Case({"cursor": "x"}), Answer("request parameters are invalid"))
    assert not excused(Case({"cursor": "x"}), Answer("invalid cursor: x", status_code=500))
    clash = Answer("use either page or offset, not both")
    assert excused(Case({"page": 1, "offset": 0}), clash)
    assert not excused(Case({"page": 1}), clash)
    too_long = Answer("range too long: at most 5000 buckets of 1h")
    assert not excused(Case({"from": "2020-01-01"}), too_long)  # not the history operation
    assert excused(Case({"from": "2020-01-01"}, Op("GET /assets/{asset_id}/history")), too_long)


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
