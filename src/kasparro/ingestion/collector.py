"""Fewer passes of Python's cyclic garbage collector while ingestion runs.

A run allocates and frees millions of small objects (cells, dicts, records, row tuples), none of
them in reference cycles, and every 700 net allocations (CPython's default threshold) start a
young-generation pass. Measured on the 100k-row CSV load: 5-7% of the run went to those passes.
While any run is in progress the young generation's threshold is raised to ``GEN0_THRESHOLD``;
the collector still runs, only less often, so the memory held by cycles stays bounded.

The setting is process-wide: concurrent runs share one raise, and it covers whatever else the
process does meanwhile (in ``serve`` and ``api``, request handling while a triggered or scheduled
run is in progress). The last run to finish puts back the threshold it found, unless something
else has changed it in the meantime; a collector switched off (threshold 0) is left off.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

GEN0_THRESHOLD = 50_000


class _Raise:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved: tuple[int, int, int] = gc.get_threshold()
        self._raised: tuple[int, int, int] = self._saved

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._active == 0:
                self._saved = gc.get_threshold()
                first, *older = self._saved
                if first != 0:  # 0: automatic collection is off, and stays off
                    gc.set_threshold(max(first, GEN0_THRESHOLD), *older)
                self._raised = gc.get_threshold()
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0 and gc.get_threshold() == self._raised:
                    gc.set_threshold(*self._saved)


_RAISE = _Raise()


def fewer_collections() -> contextlib.AbstractContextManager[None]:
    """Raise the collector's young-generation threshold for the duration of a run."""
    return _RAISE.held()
