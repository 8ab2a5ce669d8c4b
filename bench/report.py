"""Render docs/benchmarks.md from bench/results/*.json (plus the hand-written bench/interpretation.md)."""

from __future__ import annotations

from typing import Any

from bench import common

DOC = common.ROOT / "docs" / "benchmarks.md"
NOTES = common.ROOT / "bench" / "interpretation.md"
TARGETS = {"postgres": 50_000, "sqlite": 100_000}


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value < 100:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{round(value):,}"


def _records(row: dict[str, Any]) -> str:
    if row.get("capped"):
        return f"{row['records']:,} (time cap: rate from the first {row['records_done']:,})"
    return f"{row['records']:,}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _on(machine: dict[str, Any] | None) -> str:
    """Which machine a figure is from, by its kernel release (each instance here has its own
    build); nothing for a stored row that never recorded one."""
    return f" on {machine['kernel']}" if machine else ""


def _machines_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every machine a result file's figures were measured on (rows and runs may say their own)."""
    found = [result["machine"]]
    found += [row["machine"] for row in result.get("rows", []) if row.get("machine")]
    found += [run["machine"] for run in result.get("csv_runs", []) if run.get("machine")]
    if result.get("api_machine"):
        found.append(result["api_machine"])
    return found


def _meta(result: dict[str, Any]) -> str:
    return f"Command: `{result['command']}` · run {result['date']}{_on(result['machine'])}"


def _commands(result: dict[str, Any]) -> str:
    """The commands behind a part whose rows come from several runs, each with its last run."""
    last: dict[str, str] = {}
    for row in result["rows"]:
        command = row.get("command") or result["command"]
        date = (row.get("date") or result.get("date") or "") + _on(row.get("machine"))
        last[command] = max(last.get(command, ""), date)
    return "Commands: " + "; ".join(f"`{c}` (run {d})" for c, d in last.items())


def machine_section(results: list[dict[str, Any]]) -> str:
    """One column per machine the stored results were measured on, headed by its kernel
    release, which each figure's run names too."""
    machines = {m["kernel"]: m for result in results for m in _machines_of(result)}
    ms = [machines[kernel] for kernel in sorted(machines)]
    rows = [
        ["CPU", *(f"{m['cpu']} ({m['cores']} cores visible)" for m in ms)],
        ["Memory", *(f"{m['memory_gb']} GB" for m in ms)],
        ["Python", *(m["python"] for m in ms)],
        ["SQLite", *(m["sqlite"] for m in ms)],
        ["PostgreSQL", *(m["postgresql"] or "not reachable" for m in ms)],
    ]
    code = f"Code: git {common.git_revision()} (plus the working tree at the time of each run)."
    note = (
        " The results below come from separate instances of the same kind of machine, which"
        " differ in speed by up to 2x: ratios compare only within one run, and each run names"
        " its machine."
        if len(ms) > 1
        else ""
    )
    table = _table(["kernel", *(m["kernel"] for m in ms)], rows)
    return f"## Machine\n\n{table}\n\n{code}{note}"


def ingest_section(r: dict[str, Any]) -> str:
    rows = []
    for row in r["rows"]:
        lit = row.get("literal")
        target = (
            TARGETS[row["db"]] if row["records"] >= 100_000 and not row["present_pct"] else None
        )
        rows.append([
            row["db"], row["source"], _records(row), f"{row['present_pct']}%",
            f"**{_n(row['records_per_s'])}**", _n(row["ceiling_records_per_s"]),
            f"x{row['ratio_to_ceiling']}", _n(row.get("batched_ceiling_records_per_s")),
            f"x{row['ratio_to_batched_ceiling']}" if row.get("ratio_to_batched_ceiling") else "-",
            _n(row.get("floor_records_per_s")),
            f"x{row['floor_ratio_to_ceiling']}" if row.get("floor_ratio_to_ceiling") else "-",
            _n(lit["records_per_s"]) if lit else "-",
            f"x{row['ratio_to_literal']}" if lit else "-",
            ("met" if row["records_per_s"] >= target else f"missed ({_n(target)})") if target else "",
            row.get("date", r["date"]) + _on(row.get("machine")),
        ])  # fmt: skip
    main = _table(
        ["DB", "source", "records", "present", "Kasparro rec/s", "(b) ceiling rec/s",
         "Kasparro ÷ (b)", "(c) per-batch ceiling rec/s", "Kasparro ÷ (c)", "(d) floor rec/s",
         "(d) ÷ (b)", "(a) literal rec/s",
         "Kasparro ÷ (a)", "target", "run"],
        rows,
    )  # fmt: skip
    biggest = max((x["records"] for x in r["rows"]), default=0)
    stage_rows = []
    for row in r["rows"]:
        if row["records"] != biggest or row["present_pct"]:
            continue
        total = sum(row["stages"].values()) or 1.0
        top = sorted(row["stages"].items(), key=lambda kv: kv[1], reverse=True)
        stage_rows.append([
            row["db"], row["source"], f"{row['seconds']:.2f}",
            "; ".join(f"{k} {v / total:.0%}" for k, v in top if v / total >= 0.02),
        ])  # fmt: skip
    stages = _table(["DB", "source", "seconds", "share of the run by stage (≥2%)"], stage_rows)
    return (
        "## 1. Ingest throughput\n\n"
        "The real path (`BaseIngestion.run`: validate → raw → identity → unified → history → "
        "checkpoint) on the real source classes, whose `fetch()` alone is replaced to replay "
        "pre-generated payloads shaped like CoinGecko `/coins/markets` pages (250 rows), a "
        "CoinPaprika `/tickers` body (batches of `batch_size`), and the real `CsvIngestion` on a "
        "generated Kaggle-layout file. *Present 50%*: half the coins were ingested first with an "
        "older `last_updated` (API sources: upsert conflicts that update), or half of the CSV "
        "rows were ingested first (identical rows: skipped by their payload hash).\n\n"
        "* **(a) literal**: the spec's algorithm — per record validate, get-or-create the asset, "
        "`SELECT` by `(coin_id, source)`, then `UPDATE` or `INSERT` into `unified_crypto`, commit "
        "every 10 records. It writes no raw payloads and no history (less work than Kasparro). "
        f"It runs on the first {r['rows'][0].get('literal', {}).get('records', 1000):,} records "
        "(or 10 s) and its rate is **extrapolated** from that.\n"
        "* **(b) ceiling**: the rows Kasparro wrote (raw payloads, unified, history, and the assets "
        "and source mappings it created for coins new to it) bulk-loaded "
        "into empty copies of those tables (same columns and indexes, no foreign keys) in one "
        "transaction with no validation: `COPY` on PostgreSQL, `executemany` on SQLite.\n"
        "* **(c) ceiling per batch**: the same load committed every `batch_size` (1,000) rows of "
        "each table: what committing every batch would cost. Kasparro commits every "
        "`KASPARRO_COMMIT_INTERVAL` seconds (default 2) instead, so it can beat (c) on large "
        "loads; the gap between (b) and (c) is the price of per-batch durability.\n"
        "* **(d) floor**: the ceiling (b) plus the least a Python loop must do besides: read the "
        "records (a CSV file parsed into header-to-cell dicts, its numeric cells made numbers) and "
        "write each payload as canonical JSON with its hash, the best of three. No validation, no "
        "identity, no rows built. An ingest that reads records in Python and stores each payload "
        "with its hash, as the raw tables require, cannot beat (d) here, so (d) ÷ (b) is the "
        "most of the ceiling such an ingest can reach.\n"
        "* Targets: ≥50,000 rec/s on PostgreSQL and ≥100,000 rec/s on SQLite at 100k records, "
        "and ≥0.5x the ceiling.\n\n"
        f"{main}\n\nWhere the time goes at {biggest:,} records (exclusive time per stage, "
        "measured by wrapping the pipeline's functions in the bench process; "
        "`commit` is the COMMIT statements; `other` is the rest of the run: starting and finishing it, and "
        "on SQLite waiting for the last WAL checkpoint):\n\n"
        f"{stages}\n\n{_commands(r)}. cProfile listings: `python -m bench.ingest --profile` writes "
        "`bench/results/ingest_profile_*.txt` (not committed)."
    )


def passes_section(r: dict[str, Any]) -> str:
    rows = [
        [
            f"{row['top_n']:,}", row["mode"], f"{row['coingecko_min_interval']} s",
            f"**{row['wall_seconds']:.2f}**", f"{row['floor_seconds']:.2f}",
            f"x{row['wall_seconds'] / row['floor_seconds']:.2f}" if row["floor_seconds"] else "-",
            f"{row['requests']['coinpaprika']} + {row['requests']['coingecko']}",
            f"**{row['served_429_total']}**", ", ".join(f"{k} {v}" for k, v in row["statuses"].items()),
        ]
        for row in r["rows"]
    ]  # fmt: skip
    table = _table(
        ["top N", "mode", "CoinGecko spacing", "wall s", "floor s", "wall ÷ floor",
         "requests (Paprika + Gecko)", "429s", "status"],
        rows,
    )  # fmt: skip
    return (
        "## 2. Pass time under rate limits\n\n"
        "`run_pass` with the real settings (CoinPaprika 0.1 s and CoinGecko 1.5 s minimum spacing, "
        "retries as configured) against the local fake upstream (`tests/fakes`) enforcing "
        "CoinPaprika's 10 requests/s and CoinGecko's 30 requests/min (sliding windows; 429 past "
        "them) with 50-200 ms latency per response, a fresh upstream and SQLite database per pass. "
        "**Floor** (the baseline): the sum of the minimum inter-request delays, per source "
        "(requests - 1) x spacing, added up for sequential passes and the slower source for "
        f"concurrent ones.\n\n{table}\n\n{_meta(r)}."
    )


def _repeats(rows: list[dict[str, Any]]) -> str:
    """What the repeated (headline) rows are, from the rows themselves."""
    repeated = [row for row in rows if row.get("runs")]
    if not repeated:
        return ""
    counts = sorted({len(row["runs"]) for row in repeated})
    seconds = min(row["seconds"] for row in repeated)
    return (
        " The headline rows (`/data?limit=100` on one worker with the cache on, and their bare "
        f"baseline) are the run with the median p99 of {'/'.join(map(str, counts))} runs of at "
        f"least {seconds:g} s, the p99 of each run listed after it; their ratio to the bare app "
        "compares the median requests/s of each side's runs."
    )


def _p99(row: dict[str, Any]) -> str:
    """A row's p99; a repeated (headline) row adds the p99 of every run, in run order."""
    runs = row.get("runs")
    if not runs:
        return str(row["p99_ms"])
    each = " / ".join("-" if run["p99_ms"] is None else str(run["p99_ms"]) for run in runs)
    return f"{row['p99_ms']} (runs: {each})"


def api_section(r: dict[str, Any], heading: str = "## 3. API under load") -> str:
    rows = [
        [
            row["db"], row["workers"], "pinned" if row.get("pinned") else "shared",
            "-" if row["db"] == "-" else "on" if row.get("cache", True) else "**off**",
            f"`{row['endpoint']}`", "yes" if row["if_none_match"] else "no",
            f"**{_n(row['requests_per_s'])}**", row["p50_ms"], _p99(row),
            f"x{row['ratio_to_bare']}" if row.get("ratio_to_bare") is not None else "(baseline)",
            row["errors"],
        ]
        for row in r["rows"]
    ]  # fmt: skip
    table = _table(
        ["DB", "workers", "cores", "response cache", "endpoint", "If-None-Match", "req/s", "p50 ms", "p99 ms",
         "÷ bare", "non-2xx/3xx"],
        rows,
    )  # fmt: skip
    fills = "; ".join(
        f"{db}: {f['assets']:,} assets, {f['history_points']:,} history points, filled in {f['fill_seconds']} s"
        for db, f in r["fills"].items()
    )
    cores = (
        " *Cores*: **pinned** runs a one-worker server on core 0 and wrk (one thread) on core 1, "
        "so the load generator never preempts the server it measures; **shared** lets the OS "
        "place both on the 2 cores (two workers need both; one `/data?limit=100` row per "
        "database shows what sharing does to a one-worker p99). Each row's baseline is the bare "
        "app with the same workers and cores. Each cached row follows an unrecorded 1 s warm-up "
        f"run of the same load.{_repeats(r['rows'])}"
        if any(row.get("pinned") for row in r["rows"])
        else " Server and wrk (2 threads) share the 2 cores."
    )
    rss = "; ".join(f"{k}: {v['peak_mb']} MB" for k, v in (r.get("api_rss") or {}).items())
    return (
        f"{heading}\n\n"
        f"`kasparro api --workers N` as a subprocess; load from {r['generator']} in a separate "
        f"process, {r['connections']} connections, {r['duration_s']} s per row. Database built "
        f"by bulk SQL ({fills}). The baseline is a bare FastAPI app under the same uvicorn "
        "settings returning the same bytes as `/data?limit=100` from memory: the framework's "
        "ceiling on this machine (an `async def` route, no middleware). The API answers a "
        "repeated request from its response cache (keyed by path, query and data version), so "
        "rows with the cache **off** (`KASPARRO_CACHE_MAX_ENTRIES=0`) show the database path. "
        "The history endpoint caps 1h buckets at 5,000, so one year of hourly points is read "
        f"with 1d buckets.{cores}\n\n{table}\n\nPeak RSS of the API: {rss or '-'}.\n\n{_meta(r)}."
    )


def larger_api_results() -> dict[int, dict[str, Any]]:
    """Part 3 again on larger databases (``api --full``: 10M history points), by size, when run."""
    sizes = sorted(int(path.stem[4:]) for path in common.RESULTS.glob("api_[0-9]*.json"))
    results = {points: common.read_result(f"api_{points}") for points in sizes}
    return {points: result for points, result in results.items() if result and result["rows"]}


def memory_section(r: dict[str, Any]) -> str:
    runs = r.get("csv_runs") or [r["csv"]]
    rows = [[
        f"{c['file_mb']:,} MB", f"{c['rows']:,}", c["db"], f"**{c['peak_mb']} MB**",
        " → ".join(str(x) for x in c["by_quarter_peak_mb"]), f"{c['seconds']} s", _n(c["rows_per_s"]),
        c["exit_code"],
        f"`{c.get('command', r['command'])}` {c.get('date', r['date'])}{_on(c.get('machine'))}",
    ] for c in runs]  # fmt: skip
    table = _table(
        ["CSV file", "rows", "DB", "peak RSS", "peak RSS by quarter of the run", "time", "rows/s", "exit", "command, run"],
        rows,
    )  # fmt: skip
    api = r.get("api") or {}
    api_table = _table(
        ["API process (and workers)", "peak RSS"],
        [[k, f"{v['peak_mb']} MB"] for k, v in api.items()],
    )
    return (
        "## 4. Memory\n\n"
        "`kasparro etl run --source csv` as a child process on a generated Kaggle-layout file; RSS "
        "of the process and its children sampled every 0.1 s by the parent with psutil.\n\n"
        f"{table}\n\nDuring the API load of part 3 (run {r.get('api_date', '?')}"
        f"{_on(r.get('api_machine'))}):\n\n{api_table}"
    )


def render() -> str:
    parts = {p: common.read_result(p) for p in ("ingest", "passes", "api", "memory")}
    present = [r for r in parts.values() if r]
    out = [
        "# Benchmarks",
        "Generated by `make bench` (`python -m bench.run_all`; parts alone: "
        "`python -m bench.run_all ingest|passes|api|memory`, `--quick` for a short run, "
        "`--full` for 1M-record ingests with 50% present at every size, top-10,000 passes, "
        "10M history points behind the API and the 1 GB CSV; one ingest size alone: "
        "`python -m bench.ingest --size N [--present 0|50] [--source S] [--db D]`, whose rows "
        "replace only the matching ones). "
        "This machine is small and shared, so each headline figure is a ratio to a baseline "
        "measured in the same run; absolute numbers are shown beside them.",
    ]
    larger = larger_api_results()
    if present:
        out.append(machine_section(present + list(larger.values())))
    if NOTES.exists():
        out.append(NOTES.read_text().strip())
    sections = {"ingest": ingest_section, "passes": passes_section, "api": api_section,
                "memory": memory_section}  # fmt: skip
    for name, section in sections.items():
        result = parts[name]
        out.append(section(result) if result else f"## {name}\n\nNot run yet.")
        if name == "api":
            out += [
                api_section(result, f"### API under load, {points:,} history points")
                for points, result in larger.items()
            ]
    return "\n\n".join(out) + "\n"


def main() -> None:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
