"""sd_notify from every real process, as systemd sees it: each runs the command its unit runs, with its
own $NOTIFY_SOCKET (a datagram socket bound here) and WATCHDOG_USEC, and must say READY=1, then WATCHDOG=1
from its duty cycle, then STOPPING=1 on SIGTERM. And the --watch supervisor's heartbeat kill: a SIGSTOPped
process it did not spawn is killed (what systemd's Restart=always then restarts)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kairos import config
from kairos.records import ProcState
from kairos.status import StatusBoard
from kairos.supervisor.specs import ROLES, argv
from tests.process.support import ROOT, Supervised, alive, child, fast_env, wait_until
from tests.process.test_supervisor import lines
from tests.service.persist_support import free_port

pytestmark = pytest.mark.slow
WATCHDOG_USEC = "1000000"  # WATCHDOG=1 every 0.5 s


class NotifySocket:
    """What systemd binds for one unit: an AF_UNIX datagram socket collecting the messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.seen: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.seen += self.sock.recv(4096).decode().splitlines()
            except BlockingIOError:
                return self.seen

    def has(self, message: str) -> bool:
        return message in self.drain()


def engine_env(tmp: Path, prefix: str) -> dict[str, str]:
    """Simulator on free ports, feeds and gate pointed at it, persister spooling (its database unreachable)."""
    ports = {name: free_port() for name in ("binance_rest", "binance_ws", "okx_rest", "okx_ws")}
    env: dict[str, object] = {f"sim__venues__{name.replace('_', '__')}_port": port for name, port in ports.items()}
    for venue, path in (("binance", "/stream"), ("okx", "/ws/v5/public")):
        env[f"venues__{venue}__endpoints__sim__rest_url"] = f"http://127.0.0.1:{ports[venue + '_rest']}"
        env[f"venues__{venue}__endpoints__sim__ws_url"] = f"ws://127.0.0.1:{ports[venue + '_ws']}{path}"
    env.update({
        "persister__enabled": "true", "persister__dsn": f"postgresql://kairos@127.0.0.1:{free_port()}/none",
        "persister__redis_url": f"redis://127.0.0.1:{free_port()}/0", "persister__spool_dir": tmp / "spool",
        "risk__journal_dir": tmp / "journal", "logging__dir": tmp / "log", "supervisor__heartbeat_timeout_s": "30",
    })
    return fast_env(prefix, **env)


@pytest.fixture
def units(tmp_path: Path, shm_prefix: str) -> Iterator[list[tuple[str, subprocess.Popen, NotifySocket]]]:
    """The --watch supervisor, then every process of the child table, each as its own 'unit'."""
    env = engine_env(tmp_path, shm_prefix)
    started: list[tuple[str, subprocess.Popen, NotifySocket]] = []
    sup_sock = NotifySocket(tmp_path / "supervisor.notify")
    sup = Supervised([sys.executable, "-m", "procs.supervisor", "--watch"],
                     {**env, "NOTIFY_SOCKET": str(sup_sock.path), "WATCHDOG_USEC": WATCHDOG_USEC},
                     tmp_path / "supervisor.log")
    try:
        sup.connect(60)
        started.append(("supervisor", sup.proc, sup_sock))
        settings = config.load(env=env)
        for role in (r for r in ROLES if r.wanted(settings, False)):
            sock = NotifySocket(tmp_path / f"{role.role}.notify")
            unit_env = {**env, "NOTIFY_SOCKET": str(sock.path), "WATCHDOG_USEC": WATCHDOG_USEC}
            with open(tmp_path / f"{role.role}.log", "ab") as out:
                proc = subprocess.Popen(argv(role), env=unit_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            started.append((role.role, proc, sock))
        yield started
    finally:
        for _, proc, sock in reversed(started):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            sock.sock.close()
        sup.cleanup()


def test_every_process_says_ready_watchdog_and_stopping(units: list[tuple[str, subprocess.Popen, NotifySocket]],
                                                         tmp_path: Path) -> None:
    for role, proc, sock in units:
        def ready(role: str = role, proc: subprocess.Popen = proc, sock: NotifySocket = sock) -> bool:
            assert proc.poll() is None, f"{role} exited {proc.returncode}:\n{(tmp_path / f'{role}.log').read_text()}"
            return sock.has("READY=1") and sock.has("WATCHDOG=1")

        wait_until(ready, f"{role}: READY=1 then WATCHDOG=1", timeout_s=90)
        assert sock.seen.index("READY=1") < sock.seen.index("WATCHDOG=1"), (role, sock.seen)
        assert f"STATUS={role} running" in sock.seen or role == "supervisor", (role, sock.seen)
    for role, proc, sock in reversed(units):  # systemd's stop order: feeds first, supervisor last
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, role
        assert sock.has("STOPPING=1"), (role, sock.seen)


def test_watch_mode_kills_a_sigstopped_process(tmp_path: Path, shm_prefix: str) -> None:
    log = tmp_path / "children.log"
    sup = Supervised.real(shm_prefix, tmp_path / "watch.log", "--watch")  # heartbeat_timeout 1.5 s, graceful 1 s
    unit = None
    try:
        sup.connect()
        unit = Supervised([*child("gate", "run", log)["argv"]], sup.env, tmp_path / "gate.log")  # as systemd would
        pid = int(wait_until(lambda: lines(log, "gate", "started"), "the gate unit started")[0][2])
        assert pid == unit.proc.pid
        board = StatusBoard.attach(shm_prefix)  # stopped before it says RUNNING, it would be STARTING: not watched
        try:
            wait_until(lambda: any(r.role == "gate" and r.state == ProcState.RUNNING for r in board.snapshot()),
                       "the gate unit RUNNING on the board")
        finally:
            board.close()
        os.kill(pid, signal.SIGSTOP)
        assert unit.proc.wait(30) == -signal.SIGKILL  # SIGTERM stays pending on a stopped process
        assert f"gate (pid {pid}): heartbeat" in sup.text() and "killing" in sup.text()
        assert sup.proc.poll() is None and not alive(pid)
    finally:
        if unit is not None:
            unit.cleanup()
        sup.cleanup()


def test_spawned_children_do_not_inherit_the_notify_socket(supervised: Callable[..., Supervised], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a Type=notify unit only the spawning supervisor is systemd's main process: its children must not
    send READY/WATCHDOG on its behalf (NotifyAccess=main would drop them, with a warning each)."""
    sock = NotifySocket(tmp_path / "supervisor.notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
    monkeypatch.setenv("WATCHDOG_USEC", WATCHDOG_USEC)
    log = tmp_path / "children.log"
    try:
        supervised([child("strategy", "run", log)])
        pid = int(wait_until(lambda: lines(log, "strategy", "started"), "the child running")[0][2])
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_"))]
        wait_until(lambda: sock.has("WATCHDOG=1"), "the supervisor's own WATCHDOG=1")
        assert "READY=1" in sock.seen and "STATUS=supervisor up (spawn mode)" in sock.seen
    finally:
        sock.sock.close()
