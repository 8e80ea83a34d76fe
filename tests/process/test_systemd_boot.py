"""The generated units under a real systemd: PID 1 of private PID, mount, network, IPC and cgroup namespaces
over an overlay of this machine's root (tests/process/systemd_boot.sh), so nothing it writes reaches the host.

Every unit turns active only on its READY=1 and gets WATCHDOG=1 pings from its duty loop; the sandbox,
the kairos user (sysusers.d) and its directories (tmpfiles.d) are the generated ones. A SIGSTOPped gate is
killed (systemd's watchdog) and restarted; so is a SIGSTOPped strategy whose watchdog is switched off (the
--watch supervisor's heartbeat kill, across units); a child that exits 0 comes back (Restart=always), and
stopping the target stops everything and removes the shared memory. Needs root (namespaces, mounts),
unshare/nsenter, overlayfs, cgroup2 and systemd; skipped, with the reason, where one is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import gen_systemd
from tests.process.support import ROOT, wait_until

pytestmark = pytest.mark.slow
SYSTEMD = shutil.which("systemd")
BOOT = Path(__file__).with_name("systemd_boot.sh")
UNITS = ("kairos-supervisor", "kairos-sim", "kairos-persister", "kairos-gate", "kairos-strategy",
         "kairos-feed@binance", "kairos-feed@okx")
SETTINGS = {"KAIROS__SUPERVISOR__HEARTBEAT_TIMEOUT_S": "3", "KAIROS__SUPERVISOR__GRACEFUL_SECS": "2",
            "KAIROS__LOGGING__DIR": "var/systemd-test/log", "KAIROS__RISK__JOURNAL_DIR": "var/systemd-test/gate",
            "KAIROS__PERSISTER__SPOOL_DIR": "var/systemd-test/spool",  # relative: under the workdir, in the overlay
            "KAIROS__PERSISTER__DSN": "postgresql://kairos@127.0.0.1:1/kairos",  # nothing listens in the container:
            "KAIROS__PERSISTER__REDIS_URL": "redis://127.0.0.1:1/0"}              # the persister spools
NAMESPACES = ("--pid", "--fork", "--mount", "--net", "--uts", "--ipc", "--cgroup", "--propagation", "private")


def cgroup2_root() -> Path | None:
    """Where this process's own cgroup2 directory is mounted (hybrid hosts mount v2 under .../unified)."""
    mounts = [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    point = next((fields[4] for fields in mounts if fields[fields.index("-") + 1] == "cgroup2"), None)
    own = next((line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")),
               None)
    return None if point is None or own is None else Path(point) / own.lstrip("/")


def missing() -> str:
    if os.geteuid() != 0:
        return "needs root: systemd runs as PID 1 of new namespaces over an overlay mount"
    for tool in ("unshare", "nsenter", "systemd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs"
    if cgroup2_root() is None:
        return "no cgroup2 hierarchy mounted"
    if why := gen_systemd.hidden(ROOT):
        return f"the checkout {ROOT} is hidden from the units ({why})"
    return ""


class Container:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def run(self, *argv: str, check: bool = False) -> str:
        out = subprocess.run(["nsenter", "-t", str(self.pid), "-a", *argv], capture_output=True, text=True,
                             timeout=30)
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {out.returncode}: {out.stdout}{out.stderr}\n"
                                 + self.run("journalctl", "-b", "--no-pager", "-n", "40"))
        return out.stdout.strip()

    def show(self, unit: str, prop: str) -> str:
        return self.run("systemctl", "show", "-p", prop, "--value", unit)

    def active(self, *units: str) -> bool:
        return self.run("systemctl", "is-active", *units).split() == ["active"] * len(units)

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "-b", "-u", unit, "--no-pager", "-o", "cat")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def remove_cgroups(top: Path) -> None:
    """The cgroups systemd made under ours, deepest first (they are empty once its namespace is gone)."""
    for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        wait_until(lambda p=path: _rmdir(p), f"{path} empty", timeout_s=10)
    wait_until(lambda: _rmdir(top), f"{top} empty", timeout_s=10)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    if reason := missing():
        pytest.skip(f"no real systemd here: {reason}")
    units = tmp_path / "units"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")} | SETTINGS
    subprocess.run([sys.executable, "-m", "scripts.gen_systemd", "--out", str(units), "--sim"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=60)
    (units / "env").mkdir()
    (units / "env" / "kairos.env").write_text("".join(f"{k}={v}\n" for k, v in SETTINGS.items()))
    (units / "env" / "supervisor.env").write_text("KAIROS__SUPERVISOR__API_TOKEN=test-token-123\n")
    (units / "env" / "venues.env").write_text("")
    cgroup = cgroup2_root() / f"kairos-systemd-test-{uuid.uuid4().hex[:8]}"  # type: ignore[operator]
    cgroup.mkdir()
    join = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'  # systemd's cgroup root is ours, removed after
    with open(tmp_path / "boot.log", "wb") as log:
        boot = subprocess.Popen(["sh", "-c", join, "sh", str(cgroup), "unshare", *NAMESPACES, "sh", str(BOOT),
                                 str(tmp_path / "scratch"), str(units), str(SYSTEMD)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    pid = 0
    try:
        pid = wait_until(lambda: next(iter(children(boot.pid)), 0), "systemd started", timeout_s=30)
        box = Container(pid)
        wait_until(lambda: box.run("systemctl", "is-system-running") in ("running", "degraded"), "systemd booted",
                   timeout_s=90)
        yield box
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)  # PID 1 of the namespace: everything in it dies with it
        boot.wait(30)
        remove_cgroups(cgroup)


def test_units_under_a_real_systemd(container: Container) -> None:
    def up() -> bool:
        states = container.run("systemctl", "is-active", *UNITS)
        assert "failed" not in states and time.monotonic() < deadline, dict(zip(UNITS, states.split(), strict=False))
        return container.active(*UNITS)

    deadline = time.monotonic() + 120
    try:
        wait_until(up, "every unit active (READY=1)", timeout_s=130)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{container.run('journalctl', '-b', '--no-pager', '-n', '60')}") from None
    for unit in UNITS:
        assert container.show(unit, "WatchdogUSec") == "3s", unit
        assert container.show(unit, "User") == "kairos", unit
    beat = container.show("kairos-gate", "WatchdogTimestampMonotonic")
    wait_until(lambda: container.show("kairos-gate", "WatchdogTimestampMonotonic") != beat, "a WATCHDOG=1 ping",
               timeout_s=10)

    gate = container.show("kairos-gate", "MainPID")
    container.run("kill", "-STOP", gate, check=True)
    wait_until(lambda: container.show("kairos-gate", "MainPID") not in (gate, "0") and container.active("kairos-gate"),
               "the SIGSTOPped gate killed and restarted", timeout_s=60)
    # systemd's WatchdogSec (no WATCHDOG=1 from the stopped loop) usually acts before the supervisor's check
    killers = ("kairos-gate.service: Watchdog timeout", f"gate (pid {gate}): heartbeat")
    assert any(k in container.run("journalctl", "-b", "--no-pager", "-o", "cat") for k in killers)

    # with systemd's watchdog off, the --watch supervisor's heartbeat check must do it (same user, sandboxed)
    container.run("sh", "-c", "mkdir -p /run/systemd/system/kairos-strategy.service.d && printf "
                  "'[Service]\\nWatchdogSec=0\\n' > /run/systemd/system/kairos-strategy.service.d/off.conf", check=True)
    container.run("systemctl", "daemon-reload", check=True)
    container.run("systemctl", "restart", "kairos-strategy", check=True)
    assert container.show("kairos-strategy", "WatchdogUSec") in ("0", "infinity")
    strategy = container.show("kairos-strategy", "MainPID")
    container.run("kill", "-STOP", strategy, check=True)
    wait_until(lambda: container.show("kairos-strategy", "MainPID") not in (strategy, "0")
               and container.active("kairos-strategy"), "the SIGSTOPped strategy killed and restarted", timeout_s=60)
    assert f"strategy (pid {strategy}): still hung" in container.journal("kairos-supervisor")  # SIGTERM waits

    feed = container.show("kairos-feed@okx", "MainPID")
    container.run("kill", "-TERM", feed, check=True)  # not systemctl stop: the process just exits 0
    wait_until(lambda: container.show("kairos-feed@okx", "MainPID") not in (feed, "0")
               and container.active("kairos-feed@okx"), "the feed that exited 0 restarted", timeout_s=60)
    assert "status=0/SUCCESS" in container.run("systemctl", "status", "--no-pager", "kairos-feed@okx") or \
        "Deactivated successfully" in container.journal("kairos-feed@okx")

    container.run("systemctl", "stop", "kairos.target", check=True)  # returns once the target is down, not its units
    wait_until(lambda: container.run("systemctl", "is-active", *UNITS).split() == ["inactive"] * len(UNITS),
               "every unit stopped, in order", timeout_s=90)
    assert "trading ACTIVE -> HALTED: confirmed by the gate" in container.journal("kairos-gate")  # its ExecStop
    assert "supervisor stopped (clean: shared memory removed)" in container.journal("kairos-supervisor")
    assert container.run("sh", "-c", "ls /dev/shm | grep -c kairos || true") == "0"  # the supervisor unlinked them
