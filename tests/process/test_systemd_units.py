"""Generated systemd units: one per process, the supervisor's exact command lines, accepted by
`systemd-analyze verify` (the real tool; a warning counts as a failure)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kairos import config
from kairos.supervisor.specs import plan
from scripts import gen_systemd

ANALYZE = shutil.which("systemd-analyze")


def generate(out: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, str]:
    cmd = [sys.executable, "-m", "scripts.gen_systemd", "--out", str(out), *args]
    subprocess.run(cmd, check=True, cwd=gen_systemd.ROOT, env={**os.environ, **(env or {})}, capture_output=True)
    return {p.name: p.read_text() for p in sorted(out.iterdir())}


def value(text: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}="))


@pytest.fixture
def units(tmp_path: Path) -> dict[str, str]:
    return generate(tmp_path)


def test_one_unit_per_process_running_the_supervisor_commands(units: dict[str, str]) -> None:
    assert set(units) == {"kairos.target", "kairos-supervisor.service", "kairos-persister.service",
                          "kairos-gate.service", "kairos-strategy.service", "kairos-feed@.service"}
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
    if ANALYZE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing (apt-get install systemd)")
        pytest.skip("systemd-analyze is not installed")
    paths = [str(tmp_path / name) for name in units] + [str(tmp_path / "kairos-feed@binance.service")]
    out = subprocess.run([ANALYZE, "verify", *paths], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    broken = tmp_path / "kairos-gate.service"
    broken.write_text(units["kairos-gate.service"].replace("ExecStart=/", "ExecStart=/nonexistent/"))
    bad = subprocess.run([ANALYZE, "verify", *paths], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "not executable" in bad.stderr
