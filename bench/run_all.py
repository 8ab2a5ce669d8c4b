"""``make bench``: every part in turn (or the ones named), then docs/benchmarks.md.

Usage: python -m bench.run_all [ingest] [passes] [api] [memory] [--quick] [--full]
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from bench import api_load, common, ingest, memory, passes, report

PARTS = {"ingest": ingest.main, "passes": passes.main, "api": api_load.main, "memory": memory.main}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.run_all", description=__doc__)
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, a minute or two")
    parser.add_argument("--full", action="store_true", help="1M records, top 10,000, 1 GB CSV")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {list(PARTS)}")
    flags = ["--quick"] if args.quick else []
    if args.full:
        flags.append("--full")
    common.exit_cleanly_on_sigterm()
    failed = []
    started = time.perf_counter()
    for name in args.parts or list(PARTS):
        t0 = time.perf_counter()
        print(f"== {name} ==", flush=True)
        try:
            PARTS[name](flags)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"== {name}: {time.perf_counter() - t0:.0f}s ==", flush=True)
    report.main()
    print(f"bench finished in {time.perf_counter() - started:.0f}s; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
