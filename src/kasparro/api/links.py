"""OpenAPI links: which values of a response lead to which other operation.

Clients can follow them instead of building URLs, and stateful fuzzing (schemathesis) chains
requests along them, so its ids are real ones rather than guesses that end in 404.
Operation ids are the handlers' names (see ``create_app``).
"""

from __future__ import annotations

from typing import Any

Links = dict[str, dict[str, Any]]


def link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    """One link; ``parameters`` map ``location.name`` (as ``path_asset_id``) to a runtime expression."""
    return {
        "operationId": operation_id,
        "description": description,
        "parameters": {name.replace("_", ".", 1): value for name, value in parameters.items()},
    }


def with_links(status: int, links: Links) -> dict[int | str, dict[str, Any]]:
    """A ``responses`` entry adding ``links`` to the documented ``status`` response."""
    return {status: {"links": links}}


# No "next page" links: a link can carry the cursor but not the request's filters and limit, so
# a client following one would get the next page of an unfiltered list. Clients pass the cursor
# with the same query instead (the pagination object says so).


DATA_LINKS: Links = {
    "Asset": link(
        "get_asset",
        "The first record's asset across sources.",
        path_asset_id="$response.body#/data/0/asset_id",
    ),
    "AssetHistory": link(
        "get_history",
        "The first record's price history.",
        path_asset_id="$response.body#/data/0/asset_id",
    ),
    "Run": link(
        "get_run",
        "The run that last changed the first record.",
        path_run_id="$response.body#/data/0/run_id",
    ),
}
ASSETS_LINKS: Links = {
    "Asset": link(
        "get_asset", "The first asset across sources.", path_asset_id="$response.body#/data/0/id"
    ),
    "AssetHistory": link(
        "get_history", "The first asset's price history.", path_asset_id="$response.body#/data/0/id"
    ),
    "AssetRecords": link(
        "list_data", "The first asset's records.", query_asset_id="$response.body#/data/0/id"
    ),
}
ASSET_LINKS: Links = {
    "AssetHistory": link(
        "get_history", "This asset's price history.", path_asset_id="$response.body#/asset/id"
    ),
    "AssetRecords": link(
        "list_data", "This asset's records.", query_asset_id="$response.body#/asset/id"
    ),
    "Run": link(
        "get_run",
        "The run that last changed the first source's record.",
        path_run_id="$response.body#/records/0/run_id",
    ),
}
HISTORY_LINKS: Links = {
    "Asset": link(
        "get_asset", "The asset across sources.", path_asset_id="$response.body#/asset_id"
    ),
}
RUNS_LINKS: Links = {
    "Run": link("get_run", "The newest run in detail.", path_run_id="$response.body#/data/0/id"),
    "RunDrift": link(
        "list_drift", "Drift the newest run detected.", query_run_id="$response.body#/data/0/id"
    ),
    "Compare": link(
        "compare_runs",
        "The two newest runs compared (runs of one source: filter the list by `source`).",
        query_a="$response.body#/data/1/id",
        query_b="$response.body#/data/0/id",
    ),
}
RUN_LINKS: Links = {
    "RunDrift": link(
        "list_drift", "Drift this run detected.", query_run_id="$response.body#/run/id"
    ),
    "SourceRuns": link(
        "list_runs", "Every run of this run's source.", query_source="$response.body#/run/source"
    ),
}
COMPARE_LINKS: Links = {
    "RunA": link("get_run", "Run `a` in detail.", path_run_id="$response.body#/a/id"),
    "RunB": link("get_run", "Run `b` in detail.", path_run_id="$response.body#/b/id"),
}
DRIFT_LINKS: Links = {
    "Run": link(
        "get_run",
        "The run that detected the first event.",
        path_run_id="$response.body#/data/0/run_id",
    ),
}
TRIGGER_LINKS: Links = {
    "SourceRuns": link(
        "list_runs",
        "Runs of the first source started, where the pass's run appears once it begins.",
        query_source="$response.body#/sources/0",
    ),
}
