"""Small real disks for full-disk tests: a tmpfs of a given size, always unmounted afterwards.

Mounting needs root (CAP_SYS_ADMIN). Without it the test is skipped, except under CI=true, where a
full-disk proof that did not run is a failure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """``small_disk(name, size)`` mounts a tmpfs of ``size`` (e.g. "512k") at tmp_path/name."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode:
            message = f"cannot mount a tmpfs (root needed): {done.stderr.strip()}"
            pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
        mounted.append(path)
        return path

    try:
        yield mount
    finally:
        for path in mounted:
            _unmount(path)
