"""The project runs from a clone in any folder (issue 11 part 1): no tracked code, test, script, unit template or
config names the folder this checkout happens to sit in, nor the exchange samples beside it by an absolute path."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("kairos", "procs", "scripts", "tests", "deploy", "config", "proto", "Makefile", "pyproject.toml")
SAMPLES = re.compile(r"(?<![\w.])/[\w./-]*/exchange-samples")  # absolute; ../shared/exchange-samples is fine


def tracked() -> list[Path]:
    done = subprocess.run(["git", "ls-files", "-z", *CHECKED], cwd=ROOT, capture_output=True, timeout=60)
    if done.returncode:
        pytest.skip(f"not a git checkout: {done.stderr.decode(errors='replace').strip()}")
    return [ROOT / name for name in done.stdout.decode().split("\0") if name]


def test_no_tracked_file_holds_an_absolute_path_to_the_checkout_or_the_samples() -> None:
    here, beside = str(ROOT), str(ROOT.parent / "shared")
    found = []
    for path in tracked():
        try:
            text = path.read_text(errors="replace")
        except (IsADirectoryError, FileNotFoundError):  # a submodule, or deleted in the working tree
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if here in line or beside in line or SAMPLES.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not found, "\n".join(found)
