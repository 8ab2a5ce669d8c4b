"""The metric names deploy/grafana-dashboard.json queries, and the names a /metrics page exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
# PromQL words that are not metric names: functions, aggregations, modifiers
PROMQL_WORDS = frozenset(
    {"sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
     "time", "by", "without", "on", "ignoring", "and", "or", "unless", "offset", "bool"}
)  # fmt: skip
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NOT_NAMES = re.compile(
    r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring)\s*\([^)]*\)'
    r"|(?<![\w:])[0-9][0-9.]*(?:[eE][+-]?[0-9]+)?"  # number literals, such as 1e-9
)


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in _expressions(value)]
    if isinstance(node, list):
        return [e for item in node for e in _expressions(item)]
    return []


def dashboard_metric_names(path: Path = DASHBOARD) -> set[str]:
    """Every metric name the dashboard's PromQL expressions select."""
    names = set()
    for expr in _expressions(json.loads(path.read_text())):
        bare = _NOT_NAMES.sub(" ", expr)  # strings, label matchers, ranges, grouping labels
        for match in _IDENTIFIER.finditer(bare):
            word, rest = match.group(), bare[match.end() :].lstrip()
            if word not in PROMQL_WORDS and not rest.startswith("("):
                names.add(word)
    return names


def exported_sample_names(text: str) -> set[str]:
    """Every sample name on a Prometheus text page (``_total``, ``_bucket`` … included)."""
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
