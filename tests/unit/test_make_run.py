"""`make run` keeps to its own storage (issue 11 part 6): the command it runs selects config/dev.yaml, and that
layer gives a database, Redis db and market-data retention of its own, not the machine's defaults."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kairos import config

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_selects_the_dev_layer() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIROS", "APP_ENV"))}
    done = subprocess.run(["make", "-n", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    command = next(line for line in done.stdout.splitlines() if "procs.supervisor" in line)
    assert re.search(r"(^|\s)APP_ENV=dev\s", command) and "KAIROS__EXECUTION__MODE=paper" in command, command
    assert command.rstrip().endswith("-m procs.supervisor --sim"), command


def test_the_dev_layer_keeps_to_its_own_database_redis_db_and_one_day_of_market_data() -> None:
    base, dev = config.load(ROOT / "config", {}), config.load(ROOT / "config", {"APP_ENV": "dev"})
    assert dev.persister.dsn.rsplit("/", 1)[1] == "kairos_dev" != base.persister.dsn.rsplit("/", 1)[1]
    assert dev.persister.create_database
    assert dev.persister.redis_url.rsplit("/", 1)[1] == "1" != base.persister.redis_url.rsplit("/", 1)[1]
    assert dev.persister.md_retention_days == 1
