"""Running a real supervisor in tests: fast timings, ephemeral gRPC port, bounded waits, and a
cleanup that kills every process carrying the test's shm prefix (children run in their own
sessions, so killing the supervisor's group is not enough)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from kairos.api.pb import pb, pb_grpc

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-123"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
PORT_LINE = re.compile(r"gRPC API on [\d.]+:(\d+)")
T = TypeVar("T")


def fast_env(prefix: str, **overrides: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS")}
    env.update({
        "KAIROS__SHM_PREFIX": prefix, "KAIROS__SUPERVISOR__GRPC_PORT": "0", "KAIROS__SUPERVISOR__METRICS_PORT": "0",
        "KAIROS__SUPERVISOR__API_TOKEN": TOKEN,
        "KAIROS__SUPERVISOR__START_SECS": "0.3", "KAIROS__SUPERVISOR__START_RETRIES": "2",
        "KAIROS__SUPERVISOR__BACKOFF_INITIAL_S": "0.1", "KAIROS__SUPERVISOR__BACKOFF_MAX_S": "0.4",
        "KAIROS__SUPERVISOR__HEARTBEAT_TIMEOUT_S": "1.5", "KAIROS__SUPERVISOR__GRACEFUL_SECS": "1.0",
        "KAIROS__SUPERVISOR__ORDER_TIMEOUT_S": "3.0", "KAIROS__RINGS__BLOCK_TIMEOUT_MS": "200",
        "KAIROS__LOGGING__JSON_FILES": "false", "KAIROS__PERSISTER__ENABLED": "false", "PYTHONUNBUFFERED": "1",
    })
    env.update({f"KAIROS__{k.upper()}": str(v) for k, v in overrides.items()})
    return env


def child(role: str, mode: str, log: Path, *extra: str, phase: int = 0, halts: bool = False) -> dict[str, Any]:
    argv = [sys.executable, "-m", "tests.process.childproc", role, mode, "--log", str(log), *extra]
    return {"role": role, "argv": argv, "phase": phase, "halts": halts}


def wait_until(check: Callable[[], T], what: str, timeout_s: float = 20.0, step_s: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy, bounded by both count and time."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / step_s) + 1):
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


class DefaultToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamStreamClientInterceptor):
    """Sends the test token on calls that set no ``authorization`` themselves (reads need it too)."""

    def _with_token(self, details: Any) -> Any:
        metadata = list(details.metadata or ())
        if not any(key == "authorization" for key, _ in metadata):
            metadata += AUTH
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)


class Supervised:
    """One supervisor process (the harness or procs.supervisor) and its gRPC stub."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.prefix = env, log, env["KAIROS__SHM_PREFIX"]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.port = 0
        self.bare: grpc.Channel | None = None  # no default token: for tests of the authentication itself
        self.channel: grpc.Channel | None = None
        self.stub: Any = None

    @classmethod
    def harness(cls, prefix: str, log: Path, children: list[dict], watch: bool = False, **env: object) -> Supervised:
        argv = [sys.executable, "-m", "tests.process.harness", json.dumps({"watch": watch, "children": children})]
        dirs = {"risk__journal_dir": log.parent / "journal", "logging__dir": log.parent / "log"}
        return cls(argv, fast_env(prefix, **{**dirs, **env}), log)

    @classmethod
    def real(cls, prefix: str, log: Path, *args: str, **env: object) -> Supervised:
        argv = [sys.executable, "-m", "procs.supervisor", *args]
        return cls(argv, fast_env(prefix, **{"risk__journal_dir": log.parent / "journal", **env}), log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def connect(self, timeout_s: float = 30.0) -> Supervised:
        def port() -> int:
            if self.proc.poll() is not None:
                raise AssertionError(f"supervisor exited with {self.proc.returncode}:\n{self.text()}")
            found = PORT_LINE.search(self.text())
            return int(found.group(1)) if found else 0

        self.port = wait_until(port, "the gRPC port in the supervisor log", timeout_s)
        self.bare = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.channel = grpc.intercept_channel(self.bare, DefaultToken())
        self.stub = pb_grpc.TradingEngineStub(self.channel)
        return self

    def status(self) -> Any:
        return self.stub.GetSystemStatus(pb.GetSystemStatusRequest(), timeout=5)

    def process(self, role: str) -> Any:
        return next((p for p in self.status().processes if p.role == role), None)

    def wait_process(self, role: str, check: Callable[[Any], bool], what: str, timeout_s: float = 20.0) -> Any:
        def probe() -> Any:
            proc = self.process(role)
            return proc if proc is not None and check(proc) else None

        return wait_until(probe, f"{role}: {what}", timeout_s)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        self.close_channel()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout_s)

    def close_channel(self) -> None:
        if self.bare is not None:
            self.bare.close()
            self.bare = self.channel = None

    def cleanup(self) -> None:
        """Always: kill the supervisor, then every process started under this test's prefix."""
        self.close_channel()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in pids_with_prefix(self.prefix):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def pids_with_prefix(prefix: str) -> list[int]:
    """Live processes whose environment has KAIROS__SHM_PREFIX=<prefix> (unique per test)."""
    needle = f"KAIROS__SHM_PREFIX={prefix}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def shm_left(prefix: str) -> list[str]:
    return sorted(p.name for p in Path("/dev/shm").iterdir() if prefix in p.name)
