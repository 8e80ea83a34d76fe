"""Starting a closed venue's executor off the gate's duty thread.

`Executor.start` blocks on the venue's REST (clock sync, order rules) for up to its HTTP timeout per
call. Once the gate trades on one venue, a venue still closed is started here, on a worker thread,
so a venue whose address answers nothing (a black hole: each call waits ``execution.http_timeout_s``)
never stalls orders on the others. The gate does not touch an executor while its start is in flight.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from kairos.execution.base import Executor

RETRY_NS = 1_000_000_000


class Opener:
    """One start in flight per venue; a failed one is tried again ``RETRY_NS`` after it ended."""

    __slots__ = ("_next_ns", "_pending", "_pool")

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(thread_name_prefix="gate-open")
        self._pending: dict[int, Future[None]] = {}
        self._next_ns: dict[int, int] = {}

    def busy(self, venue: int) -> bool:
        """A start of ``venue`` is in flight: its executor is not to be touched."""
        return venue in self._pending

    def poll(self, venue: int, executor: Executor, now_ns: int) -> bool:
        """Never blocks: True once ``executor`` has started. The first call (and the first after a failure
        and its retry delay) begins a start; a failed start raises its error here (ExecutionError)."""
        pending = self._pending.get(venue)
        if pending is None:
            if now_ns >= self._next_ns.get(venue, 0):
                self._pending[venue] = self._pool.submit(executor.start)
            return False
        if not pending.done():
            return False
        del self._pending[venue]
        self._next_ns[venue] = now_ns + RETRY_NS
        pending.result()
        return True

    def close(self) -> None:
        """Starts in flight are abandoned (their threads end with their HTTP timeout)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
