"""sd_notify without libsystemd: the protocol is one datagram per message on $NOTIFY_SOCKET.

Every process (AgentRunner, and the supervisor's own loop) says READY=1 once started, STATUS= lines,
WATCHDOG=1 from its duty cycle and STOPPING=1, so its ``Type=notify`` unit orders on real readiness and
``WatchdogSec=`` kills a process whose hot loop hangs (a side thread could not keep it alive). Outside
systemd (no $NOTIFY_SOCKET) every call is one comparison and returns.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)
ENV: tuple[str, ...] = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
"""systemd hands these to the unit's main process only: the spawning supervisor keeps them from its children."""
NEVER_NS = 2**63 - 1


def scrub(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the sd_notify variables (a spawned child is not the unit's main process)."""
    return {k: v for k, v in env.items() if k not in ENV}


def watchdog_interval_ns(env: Mapping[str, str], pid: int) -> int:
    """Half of WATCHDOG_USEC (sd_watchdog_enabled), 0 when off, meant for another pid, or malformed (logged)."""
    usec, owner = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec or (owner and owner != str(pid)):
        return 0
    try:
        value = int(usec)
    except ValueError:
        value = 0
    if value <= 0:
        log.error("WATCHDOG_USEC=%r is not a positive integer: no WATCHDOG=1 pings (systemd will kill us)", usec)
        return 0
    return value * 500


class Notifier:
    """One process's sd_notify channel; ``watchdog(now_ns)`` is the only call on the hot loop."""

    __slots__ = ("_address", "_interval_ns", "_next_ns", "_sock", "failures")

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address  # "@": abstract namespace
        self._interval_ns = watchdog_interval_ns(env, os.getpid()) if address else 0
        self._next_ns = 0 if self._interval_ns else NEVER_NS
        self._sock: socket.socket | None = None
        self.failures = 0

    def send(self, state: str) -> bool:
        """Send ``state`` ("READY=1\\nSTATUS=..."); False when not run by systemd or the send failed (counted)."""
        if not self._address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(state.encode(), self._address)
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:
                log.error("sd_notify to %s failed: %s (%s)", self._address, exc, state.replace("\n", " "))
            return False
        return True

    def watchdog(self, now_ns: int) -> None:
        """WATCHDOG=1 at most every WATCHDOG_USEC/2: one comparison when not due, nothing when not watched."""
        if now_ns >= self._next_ns:
            self._next_ns = now_ns + self._interval_ns
            self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
