"""sd_notify: messages on a datagram socket bound here, the WATCHDOG=1 rate limit (clock passed in),
and the cases where systemd's variables must be ignored; the --watch heartbeat kill's row selection."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kairos.records import ProcState
from kairos.status import BoardRow
from kairos.supervisor.hung import stale_rows
from kairos.supervisor.systemd import Notifier, scrub, watchdog_interval_ns

S = 1_000_000_000


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_messages_and_watchdog_at_half_the_interval(listener: socket.socket, tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000",
                         "WATCHDOG_PID": str(os.getpid())})
    assert notifier.send("READY=1\nSTATUS=x running")
    for now in (10 * S, 10 * S + 1, 10 * S + S - 1, 11 * S, 11 * S + 5, 12 * S):
        notifier.watchdog(now)
    assert received(listener) == ["READY=1\nSTATUS=x running", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1"]
    notifier.close()


def test_abstract_socket_address(tmp_path: Path) -> None:
    name = f"kairos-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send("STOPPING=1")
        assert sock.recv(64) == b"STOPPING=1"


@pytest.mark.parametrize("env", [{}, {"WATCHDOG_USEC": "1000000"}, {"NOTIFY_SOCKET": "-"},
                                 {"NOTIFY_SOCKET": "-", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}])
def test_no_watchdog_without_systemd_or_for_another_pid(listener: socket.socket, tmp_path: Path,
                                                         env: dict[str, str]) -> None:
    notifier = Notifier({k: str(tmp_path / "notify") if v == "-" else v for k, v in env.items()})
    notifier.watchdog(10 * S)
    assert received(listener) == []
    assert not Notifier({}).send("READY=1")


def test_malformed_watchdog_usec_is_logged_and_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert watchdog_interval_ns({"WATCHDOG_USEC": "soon"}, os.getpid()) == 0
    assert "WATCHDOG_USEC='soon' is not a positive integer" in caplog.text


def test_a_failed_send_is_counted_and_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.ERROR):
        assert not notifier.send("READY=1") and not notifier.send("WATCHDOG=1")
    assert notifier.failures == 2 and caplog.text.count("sd_notify to") == 1


def test_spawned_children_do_not_get_the_notify_socket() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "7", "PATH": "/bin"}
    assert scrub(env) == {"PATH": "/bin"}


def test_stale_rows_are_live_beating_and_past_the_timeout() -> None:
    def row(pid: int, state: ProcState, beat_s: float, alive: bool = True) -> BoardRow:
        return BoardRow(f"r{pid}", pid, alive, state, 0, int(beat_s * S), {}, {})

    rows = [row(1, ProcState.RUNNING, 0), row(2, ProcState.DEGRADED, 5), row(3, ProcState.STARTING, 0),
            row(4, ProcState.RUNNING, 0, alive=False), row(5, ProcState.RUNNING, 9)]
    assert [(r.pid, age) for r, age in stale_rows(rows, 10 * S, 2.0)] == [(1, 10.0), (2, 5.0)]
