"""`python -m procs.supervisor --check` (docs/DEPLOY.md): one line, valid or not, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.process.support import ROOT


def check(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAIROS", "APP_ENV"))}
    return subprocess.run([sys.executable, "-m", "procs.supervisor", "--check"], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_a_valid_configuration_is_one_line() -> None:
    out = check(APP_ENV="dev")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("config OK: env dev (APP_ENV=dev), execution paper") and out.stdout.count("\n") == 1


@pytest.mark.parametrize(("env", "message"), [
    ({"KAIROS__SUPERVISOR__GRPC_PORT": "abc"}, "expected int, got str 'abc' [key 'supervisor.grpc_port'"),
    ({"KAIROS__EXECUTION__MODE": "live"}, "missing secret: set KAIROS__VENUES__BINANCE__API_KEY"),
    ({"KAIROS__SUPERVISOR__TLS_CERT": "nope.pem", "KAIROS__SUPERVISOR__TLS_KEY": "nope.key"}, "cannot read nope.pem"),
])
def test_an_invalid_configuration_is_one_line_naming_the_key(env: dict[str, str], message: str) -> None:
    out = check(**env)
    assert out.returncode == 3 and not out.stdout
    assert out.stderr.count("\n") == 1 and message in out.stderr and "Traceback" not in out.stderr
