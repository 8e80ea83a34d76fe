"""Starting and signalling children: the only OS calls the arbiter makes on their behalf.

``posix_spawn`` (no Python runs between fork and exec, so it is safe next to the gRPC threads)
with ``setsid``: each child leads its own session and process group, so Ctrl-C on a terminal
reaches only the supervisor, and signalling the group also reaches anything the child started.
When util-linux ``setpriv`` exists the child also gets a parent-death signal (SIGTERM), so even a
SIGKILLed supervisor leaves no orphans behind.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Mapping, Sequence

SETPRIV = shutil.which("setpriv")
# Python ignores these; an exec keeps ignored signals ignored, so give children the defaults back.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def command(argv: Sequence[str]) -> list[str]:
    """The argv actually executed: the child's command behind the parent-death guard, if available."""
    guard = [SETPRIV, "--pdeathsig", "TERM", "--"] if SETPRIV else []
    return [*guard, *argv]


def spawn(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Start ``argv`` in a new session with stdin from /dev/null; returns its pid. OSError if exec fails."""
    cmd = command(argv)
    return os.posix_spawn(
        cmd[0], cmd, dict(env), setsid=True, setsigmask=(), setsigdef=_DEFAULT_SIGNALS,
        file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
    )


def signal_group(pid: int, sig: int) -> bool:
    """Signal the child's whole process group; False if it is already gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True
