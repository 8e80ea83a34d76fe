"""Generated systemd units: one per process, the supervisor's exact command lines, Type=notify with a
watchdog, a dedicated user in a sandbox, accepted by `systemd-analyze verify` (the real tool; a warning
counts as a failure) and rated 3.0 or lower by `systemd-analyze security --offline=true`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kairos import config
from kairos.supervisor.specs import plan
from scripts import gen_systemd

ANALYZE = shutil.which("systemd-analyze")
SCORE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+) ")


def generate(out: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, str]:
    cmd = [sys.executable, "-m", "scripts.gen_systemd", "--out", str(out), *args]
    subprocess.run(cmd, check=True, cwd=gen_systemd.ROOT, env={**os.environ, **(env or {})}, capture_output=True)
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}


def value(text: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}="))


@pytest.fixture
def units(tmp_path: Path) -> dict[str, str]:
    return generate(tmp_path)


def test_one_unit_per_process_running_the_supervisor_commands(units: dict[str, str]) -> None:
    assert set(units) == {"kairos.target", "kairos-supervisor.service", "kairos-persister.service",
                          "kairos-gate.service", "kairos-strategy.service", "kairos-feed@.service",
                          "sysusers.d/kairos.conf", "tmpfiles.d/kairos.conf"}
    for spec in plan(config.load(), sim=False).specs:
        if spec.role.startswith("feed."):
            assert value(units["kairos-feed@.service"], "ExecStart") == " ".join(spec.argv[:-1]) + " %i"
        else:
            assert value(units[f"kairos-{spec.role}.service"], "ExecStart") == " ".join(spec.argv)
    sup = units["kairos-supervisor.service"]
    assert value(sup, "ExecStart").endswith("-m procs.supervisor --watch") and value(sup, "Type") == "notify"
    assert value(units["kairos.target"], "Wants").split() == [
        "kairos-supervisor.service", "kairos-persister.service", "kairos-gate.service", "kairos-strategy.service",
        "kairos-feed@binance.service", "kairos-feed@okx.service"]


def test_start_order_makes_systemd_stop_in_the_supervisor_order(units: dict[str, str]) -> None:
    after = {name: set(value(text, "After").split()) for name, text in units.items() if name.endswith(".service")}
    assert after["kairos-persister.service"] == {"kairos-supervisor.service"}
    assert "kairos-persister.service" in after["kairos-gate.service"]
    assert "kairos-gate.service" in after["kairos-strategy.service"]
    assert "kairos-strategy.service" in after["kairos-feed@.service"]
    assert "halt --cancel-all" in value(units["kairos-gate.service"], "ExecStop")
    for name in after:
        assert value(units[name], "Restart") == "always", name  # a child that exits 0 comes back too
        if name != "kairos-supervisor.service":
            assert value(units[name], "RestartPreventExitStatus") == "3"
            assert value(units[name], "Requires") == "kairos-supervisor.service"


def test_only_the_gate_and_the_supervisor_read_secrets(units: dict[str, str]) -> None:
    files = {name: [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("EnvironmentFile=")]
             for name, text in units.items() if name.endswith(".service")}
    for name, paths in files.items():
        expected = {"kairos-gate.service": ["-/etc/kairos/venues.env"],
                    "kairos-supervisor.service": ["-/etc/kairos/supervisor.env"]}.get(name, [])
        assert paths == ["-/etc/kairos/kairos.env", *expected], name
    assert ". /etc/kairos/supervisor.env;" in value(units["kairos-gate.service"], "ExecStop")
    for text in units.values():
        assert "StartLimitBurst" not in text  # like the supervisor's BACKOFF: never give up on a crash


def test_config_decides_which_units_exist(tmp_path: Path) -> None:
    env = {"KAIROS__PERSISTER__ENABLED": "false", "KAIROS__VENUES__OKX__ENABLED": "false"}
    units = generate(tmp_path, "--user", "kairos", "--sim", env=env)
    assert "kairos-persister.service" not in units and "kairos-sim.service" in units
    assert "kairos-feed@okx.service" not in value(units["kairos.target"], "Wants")
    assert "kairos-feed@binance.service" in value(units["kairos.target"], "Wants")
    assert value(units["kairos-gate.service"], "User") == "kairos"


def test_systemd_analyze_verify_accepts_every_unit(units: dict[str, str], tmp_path: Path) -> None:
    analyze = need_analyze()
    paths = [str(tmp_path / name) for name in units if "/" not in name]
    paths.append(str(tmp_path / "kairos-feed@binance.service"))
    out = subprocess.run([analyze, "verify", *paths], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    broken = tmp_path / "kairos-gate.service"
    broken.write_text(units["kairos-gate.service"].replace("ExecStart=/", "ExecStart=/nonexistent/"))
    bad = subprocess.run([analyze, "verify", *paths], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "not executable" in bad.stderr


def test_every_unit_is_notify_with_a_watchdog_as_its_own_user_and_identifier(units: dict[str, str]) -> None:
    services = {name: text for name, text in units.items() if name.endswith(".service")}
    for name, text in services.items():
        assert value(text, "Type") == "notify" and value(text, "NotifyAccess") == "main", name
        assert value(text, "WatchdogSec") == "10", name  # supervisor.heartbeat_timeout_s
        assert value(text, "User") == value(text, "Group") == "kairos", name
        assert value(text, "LimitNOFILE") == "65536" and value(text, "ProtectSystem") == "strict", name
        assert "RemoveIPC" not in text and "PrivateUsers" not in text, name  # rings shared, hung units killable
    idents = {name: value(text, "SyslogIdentifier") for name, text in services.items()}
    assert idents == {"kairos-supervisor.service": "kairos-supervisor", "kairos-persister.service": "kairos-persister",
                      "kairos-gate.service": "kairos-gate", "kairos-strategy.service": "kairos-strategy",
                      "kairos-feed@.service": "kairos-feed.%i"}


def test_only_the_directories_a_role_writes_are_writable_and_tmpfiles_creates_them(tmp_path: Path) -> None:
    env = {"KAIROS__PERSISTER__SPOOL_DIR": "/srv/kairos-spool"}
    units = generate(tmp_path, "--workdir", "/opt/kairos", "--user", "trader", env=env)
    rw = {name: value(text, "ReadWritePaths").split() for name, text in units.items() if name.endswith(".service")}
    assert rw["kairos-gate.service"] == rw["kairos-supervisor.service"] == ["/opt/kairos/var/log",
                                                                             "/opt/kairos/var/gate"]
    assert rw["kairos-persister.service"] == ["/opt/kairos/var/log", "/srv/kairos-spool"]
    assert rw["kairos-strategy.service"] == rw["kairos-feed@.service"] == ["/opt/kairos/var/log"]
    assert units["tmpfiles.d/kairos.conf"].splitlines()[1:] == [
        "d /opt/kairos/var/gate 0750 trader trader -", "d /opt/kairos/var/log 0750 trader trader -",
        "d /srv/kairos-spool 0750 trader trader -"]
    assert units["sysusers.d/kairos.conf"].splitlines()[1] == (
        'u trader - "KAIRÓS Core trading engine" /opt/kairos /usr/sbin/nologin')


def test_live_mode_refuses_to_start_without_its_env_files(tmp_path: Path) -> None:
    host = tmp_path / "kairos.env"  # live mode set where the units get it: the generator reads the file too
    host.write_text("# per-host\n\nKAIROS__EXECUTION__MODE='live'\n")
    units = generate(tmp_path / "units", "--env-file", str(host))
    files = [line for text in units.values() for line in text.splitlines() if line.startswith("EnvironmentFile=")]
    assert files and all(not line.startswith("EnvironmentFile=-") for line in files)
    assert f"EnvironmentFile={host}" in units["kairos-strategy.service"]
    host.write_text("KAIROS__EXECUTION__MODE live\n")
    bad = subprocess.run([sys.executable, "-m", "scripts.gen_systemd", "--out", str(tmp_path / "bad"), "--env-file",
                          str(host)], cwd=gen_systemd.ROOT, capture_output=True, text=True)
    assert bad.returncode == 3 and f"line 1 is not KEY=VALUE [in {host}]" in bad.stderr


def need_analyze() -> str:
    if ANALYZE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing (apt-get install systemd)")
        pytest.skip("systemd-analyze is not installed")
    return ANALYZE


def exposure(analyze: str, unit: Path) -> float:
    out = subprocess.run([analyze, "security", "--offline=true", str(unit)], cwd=unit.parent, capture_output=True,
                         text=True, timeout=60)
    found = SCORE.search(out.stdout)
    assert found, out.stdout + out.stderr
    return float(found.group(1))


def test_systemd_analyze_security_rates_every_unit_3_or_lower(units: dict[str, str], tmp_path: Path) -> None:
    analyze = need_analyze()
    (tmp_path / "kairos-feed@binance.service").write_text(units["kairos-feed@.service"])
    scores = {path.name: exposure(analyze, path) for path in sorted(tmp_path.glob("*.service"))}
    assert len(scores) == 6 and all(score <= 3.0 for score in scores.values()), scores
    bare = tmp_path / "bare" / "kairos-gate.service"  # the same unit without its sandbox: UNSAFE, as before
    bare.parent.mkdir()
    bare.write_text(units["kairos-gate.service"].split("NoNewPrivileges=")[0].replace("User=kairos\n", ""))
    assert exposure(analyze, bare) > 9.0


def test_an_interpreter_in_a_home_is_bound_in_and_a_hidden_workdir_warned(tmp_path: Path) -> None:
    in_home = Path.home() / "pyenv" / "versions" / "3.11" / "bin" / "python3.11"
    assert gen_systemd.protect_home(str(in_home)) == (
        f"ProtectHome=tmpfs\nBindReadOnlyPaths={Path.home() / 'pyenv' / 'versions' / '3.11'}\n")
    assert gen_systemd.protect_home(str(tmp_path / "venv" / "bin" / "python")) == "ProtectHome=yes\n"
    warned = subprocess.run([sys.executable, "-m", "scripts.gen_systemd", "--out", str(tmp_path / "u"),
                             "--workdir", str(Path.home() / "kairos")], cwd=gen_systemd.ROOT, capture_output=True,
                            text=True)
    assert warned.returncode == 0 and "the units cannot see --workdir" in warned.stderr
    assert "ProtectHome=" in warned.stderr and gen_systemd.hidden(tmp_path) == "PrivateTmp="
