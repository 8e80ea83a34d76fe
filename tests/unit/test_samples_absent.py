"""A clone with nothing beside it (issue 11 part 1): the replay tests, the only ones that read the exchange samples,
are skipped with one clear reason, and nothing fails for want of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.samples import MISSING

ROOT = Path(__file__).resolve().parents[2]


def test_without_the_samples_the_replay_tests_skip_with_one_reason(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")} | {"KAIROS_SAMPLES": str(tmp_path / "no")}
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/replay", "-q", "-ra", "-p", "no:cacheprovider"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    summary = done.stdout.splitlines()
    assert done.returncode in (0, 5), done.stdout[-3000:]  # 5: every module skipped at collection, none left
    skips = [line for line in summary if line.startswith("SKIPPED")]
    assert skips and all(line.endswith(MISSING) for line in skips), "\n".join(skips)
    assert " failed" not in summary[-1] and " error" not in summary[-1] and " skipped" in summary[-1], summary[-1]
