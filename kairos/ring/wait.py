"""Wait strategies for an idle consumer, and the doorbell semaphore behind the blocking one.

Blocking is an eventcount: the consumer raises a ``sleeping`` flag in its cursor line in every
ring it reads, issues a full fence, re-checks for work, then waits on its doorbell with a timeout.
The producer stores ``published``, issues a full fence, and posts the doorbell of each consumer
whose flag is up. The two fences forbid the store->load reordering x86-64 TSO otherwise allows
(each side reading the other's old value and nobody posting); a wake-up lost anyway (a consumer
killed mid-sleep, a bell unlinked under us) costs at most ``timeout_s``.

The doorbell is per consumer NAME, ``/{prefix}.bell.{consumer}``, so a process reading several
rings under one name (the gate reads intents, manual and md.*) sleeps on one semaphore.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import posix_ipc

WAITS: Final = ("block", "yield", "spin")
DEFAULT_TIMEOUT_S: Final = 0.05
DEFAULT_SPIN_US: Final = 0  # measured: a spin before sleeping bought nothing on 2 shared cores (docs/RING.md)

fence_lock = threading.Lock()
"""Never held across anything: acquire+release is only a full fence (see `fence`)."""
_fence_acquire, _fence_release = fence_lock.acquire, fence_lock.release


def fence() -> None:
    """Full memory fence: an uncontended lock acquire+release is two LOCK-prefixed atomics in C."""
    _fence_acquire()
    _fence_release()


def bell_name(prefix: str, consumer: str) -> str:
    return f"/{prefix}.bell.{consumer}"


def open_bell(name: str) -> posix_ipc.Semaphore:
    """Open (creating if needed) a doorbell; producers and waiters may start in any order."""
    return posix_ipc.Semaphore(name, posix_ipc.O_CREAT, initial_value=0)


def unlink_bell(name: str) -> bool:
    try:
        posix_ipc.unlink_semaphore(name)
    except posix_ipc.ExistentialError:
        return False
    return True


class Waitable(Protocol):
    """What a waiter needs from a consumer (kairos.ring.poller.Poller provides it)."""

    name: str
    bell: str

    def pending(self) -> bool: ...

    def flag(self) -> tuple[memoryview, int]: ...


class WaitStrategy(Protocol):
    """``idle(work)`` is called after every duty cycle with the work it did; it waits only when 0.

    It must return within its timeout so the caller can heartbeat and notice a stop request.
    """

    def idle(self, work: int) -> None: ...


class BusySpinWait:
    """Never yields the core: lowest latency, 100% CPU. Only with a core to spare per spinner."""

    __slots__ = ()

    def idle(self, work: int) -> None:
        return None


class YieldingWait:
    """sched_yield when idle: near-spin latency, still 100% CPU, but lets others run first."""

    __slots__ = ()

    def idle(self, work: int) -> None:
        if not work:
            os.sched_yield()


class BlockingWait:
    """Sleep on the doorbell when idle (the default: an idle process costs no CPU).

    Spin-then-block: with ``spin_us`` > 0 an idle consumer first re-checks its rings for up to that
    long (bounded by the clock, ~0.1 us a check) and sleeps only if nothing came: a producer's next
    batch inside the window costs no wake-up (~40 us here). Off by default: on cores shared with the
    producers the spin takes their CPU and bought nothing (docs/RING.md, `rings.spin_us`).
    """

    __slots__ = ("_acquire", "_flags", "_pending", "_spin_ns", "_timeout", "bell")

    def __init__(
        self, consumers: Sequence[Waitable], timeout_s: float = DEFAULT_TIMEOUT_S, spin_us: int = DEFAULT_SPIN_US
    ) -> None:
        if spin_us < 0:
            raise ValueError(f"spin_us must be >= 0, got {spin_us}")
        self.bell = open_bell(consumers[0].bell)
        self._acquire = self.bell.acquire
        self._flags = tuple(c.flag() for c in consumers)
        self._pending: tuple[Callable[[], bool], ...] = tuple(c.pending for c in consumers)
        self._timeout = timeout_s
        self._spin_ns = spin_us * 1000

    def idle(self, work: int) -> None:
        if work:
            return
        if self._spin_ns and self._spin():
            return
        self._sleep()

    def _spin(self) -> bool:
        """Re-check every ring until one has work (True) or ``spin_us`` has passed (False)."""
        clock, pending = time.monotonic_ns, self._pending
        deadline = clock() + self._spin_ns
        while clock() < deadline:
            for ready in pending:
                if ready():
                    return True
        return False

    def _sleep(self) -> None:
        """Eventcount: flag up, fence, re-check, wait (bounded), flag down."""
        flags = self._flags
        for view, index in flags:
            view[index] = 1
        fence()
        if not any(pending() for pending in self._pending):
            try:  # noqa: SIM105 - contextlib.suppress costs ~0.3 us on the wake-up path
                self._acquire(self._timeout)
            except (posix_ipc.BusyError, posix_ipc.SignalError):
                pass
        for view, index in flags:
            view[index] = 0

    def close(self) -> None:
        self.bell.close()


class Waiter:
    """The idle strategy of a process consuming one or more rings under one consumer name.

    ``idle`` is bound at construction (no extra call layer): pass ``waiter.idle`` to AgentRunner.
    """

    __slots__ = ("_strategy", "bell", "idle")

    def __init__(
        self,
        consumers: Sequence[Waitable],
        prefix: str | None = None,
        name: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        wait: str = "block",
        spin_us: int = DEFAULT_SPIN_US,
    ) -> None:
        _check_same_bell(consumers, prefix, name)
        if wait not in WAITS:
            raise ValueError(f"wait strategy {wait!r} is not one of {', '.join(WAITS)}")
        strategy: BusySpinWait | YieldingWait | BlockingWait
        if wait == "block":
            strategy = BlockingWait(consumers, timeout_s, spin_us)
        else:
            strategy = YieldingWait() if wait == "yield" else BusySpinWait()
        self._strategy = strategy
        self.idle: Callable[[int], None] = strategy.idle
        self.bell: posix_ipc.Semaphore | None = strategy.bell if isinstance(strategy, BlockingWait) else None
        """The doorbell a blocking waiter sleeps on (None: spin/yield never sleep). Another source of work in the
        same process (an executor's reports) may ring it directly: at worst one duty cycle finds nothing."""

    def close(self) -> None:
        if isinstance(self._strategy, BlockingWait):
            self._strategy.close()


def _check_same_bell(consumers: Sequence[Waitable], prefix: str | None, name: str | None) -> None:
    """Producers ring ``bell_name(prefix, consumer)``: a waiter can only sleep on one of them."""
    if not consumers:
        raise ValueError("a Waiter needs at least one consumer")
    bells = {c.bell for c in consumers}
    if len(bells) != 1:
        raise ValueError(f"consumers ring different doorbells {sorted(bells)}: use one consumer name")
    if prefix is not None and name is not None and bells != {bell_name(prefix, name)}:
        raise ValueError(f"waiter {name!r} (prefix {prefix!r}) does not match consumer doorbell {bells.pop()}")
