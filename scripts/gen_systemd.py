"""Generate systemd units from the supervisor's child table (kairos/supervisor/specs.py) and config.

    python -m scripts.gen_systemd [--out build/systemd] [--user kairos] [--workdir DIR] [--python PATH]
                                  [--env-file /etc/kairos/kairos.env] [--secrets-dir /etc/kairos]
                                  [--config-dir DIR] [--sim]

One unit per process, running exactly the command the supervisor would spawn; feeds share the
template ``kairos-feed@.service`` (instance = venue). ``kairos-supervisor.service`` runs
``--watch`` and everything else Requires it. After= follows the start order, so systemd stops in the
supervisor's order: feeds, strategy, gate (ExecStop first sends CANCEL_ALL + HALTED through the API when
supervisor.cancel_on_shutdown), persister, supervisor. Every unit is ``Type=notify`` (READY=1 once
started) with ``WatchdogSec=heartbeat_timeout_s``: WATCHDOG=1 comes from each process's duty cycle
(kairos/supervisor/systemd.py), so a hung loop is killed even if its threads live. ``Restart=always``
(a child that exits 0 is also brought back) but exit code 3 (boot error) is not restarted, like FATAL;
crash loops are retried forever (StartLimitIntervalSec=0), like the supervisor's BACKOFF (systemd
before 254 has no growing delay: RestartSec is backoff_initial_s).

Secrets only where needed: every unit reads ``--env-file`` (per-host settings, no secrets), and
only a role that uses a section's secrets reads ``<secrets-dir>/<section>.env``: the gate (and sim)
``venues.env`` with the venue keys, the supervisor ``supervisor.env`` with the API token (the table
is ``Role.secrets``, the same one kairos/supervisor/secrets.py applies to spawned children). The
gate's ExecStop reads the token for its one kairosctl call without putting it in the gate's
environment. With ``execution.mode: live`` a missing env file fails the start instead of being skipped
(the generator reads ``--env-file`` too, so it sees the configuration the units will run).

Each unit runs as ``--user`` (``kairos``, created by the generated ``sysusers.d/kairos.conf``) in a
sandbox that ``systemd-analyze security`` rates OK (HARDENING): the file system is read-only but for
the directories its role writes (created by ``tmpfiles.d/kairos.conf``); /dev/shm stays shared for
the rings (PrivateDevices= keeps it; RemoveIPC= would delete the rings when one unit stops).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

from kairos import config
from kairos.config import Settings
from kairos.errors import EXIT_BOOT_ERROR, ConfigError, KairosError
from kairos.supervisor.specs import ROLES, Role

ROOT = Path(__file__).resolve().parent.parent
SUPERVISOR = "kairos-supervisor.service"
TARGET = "kairos.target"


def unit_name(role: Role) -> str:
    base = "kairos-" + role.module.removeprefix("procs.")
    return f"{base}@{role.instance}.service" if role.instance else f"{base}.service"


def chosen(settings: Settings, sim: bool) -> dict[str, list[Role]]:
    """Roles to run, grouped by module: a per-venue module becomes a template with one instance per venue."""
    groups: dict[str, list[Role]] = defaultdict(list)
    for role in ROLES:
        if role.wanted(settings, sim):
            groups[role.module].append(role)
    return groups


HARDENING = """NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
KeyringMode=private
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0027
LimitNOFILE=65536
"""
"""The sandbox of every unit (no capabilities, nothing writable but ReadWritePaths=, no exotic sockets or
syscalls). Not set, on purpose: PrivateNetwork= (venues, gRPC), PrivateUsers= (the --watch supervisor
signals hung processes of the other units), RemoveIPC= (it would unlink the rings)."""


def writable(settings: Settings, workdir: Path, module: str) -> list[Path]:
    """The directories a process writes: logs and exit notes; the gate's journal and paper ledgers (also the
    supervisor's PlaceOrder log); the persister's spool."""
    dirs = [settings.logging.dir]
    if module in ("procs.gate", "procs.supervisor"):
        dirs.append(settings.risk.journal_dir)
    if module == "procs.persister":
        dirs.append(settings.persister.spool_dir)
    return [workdir / d for d in dirs]  # an absolute setting stays absolute


HOMES = (Path("/home"), Path("/root"), Path("/run/user"))
HIDDEN = {**dict.fromkeys(HOMES, "ProtectHome="), Path("/tmp"): "PrivateTmp=", Path("/var/tmp"): "PrivateTmp="}
"""Where a unit cannot see the workdir, and the setting that hides it."""


def hidden(workdir: Path) -> str:
    """The setting that hides ``workdir`` from the units, '' when they can see it."""
    return next((why for top, why in HIDDEN.items() if workdir.resolve().is_relative_to(top)), "")


def protect_home(python: str) -> str:
    """ProtectHome=yes, unless the interpreter lives in a home (pyenv, uv): then the homes are an empty tmpfs
    with only its installation bound in, read-only (and reachable by the service user)."""
    prefix = Path(python).resolve().parent.parent  # <prefix>/bin/python3.x: the stdlib lives under <prefix>
    if not any(prefix.is_relative_to(home) for home in HOMES):
        return "ProtectHome=yes\n"
    return f"ProtectHome=tmpfs\nBindReadOnlyPaths={prefix}\n"


def service(args: argparse.Namespace, settings: Settings, role: Role, earlier: list[str]) -> str:
    cmd_args = (*role.args[:-1], "%i") if role.instance else role.args
    what = f"{role.module} --venue %i" if role.instance else role.role
    stop = ""
    if role.halts_trading and settings.supervisor.cancel_on_shutdown:
        stop = (f"ExecStop=-/bin/sh -c 'set -a; . {secrets_file(args, 'supervisor')}; exec {args.python} "
                "-m kairos.cli.kairosctl --timeout 10 --token \"$$KAIROS__SUPERVISOR__API_TOKEN\" halt --cancel-all "
                "--reason \"systemd stop\"'\n")
    ident = "kairos-" + (role.role.rsplit(".", 1)[0] + ".%i" if role.instance else role.role)
    return _unit(
        args, settings, f"KAIRÓS {what}", f"Requires={SUPERVISOR}\nAfter={' '.join([SUPERVISOR, *earlier])}",
        " ".join((args.python, "-m", role.module, *cmd_args)), ident, role.module,
        extra=f"{stop}RestartPreventExitStatus={EXIT_BOOT_ERROR}\n", secrets=role.secrets,
    )


def secrets_file(args: argparse.Namespace, section: str) -> Path:
    return args.secrets_dir / f"{section}.env"


def supervisor_unit(args: argparse.Namespace, settings: Settings) -> str:
    return _unit(args, settings, "KAIRÓS supervisor (--watch: status board, rings, gRPC API)",
                 "After=network-online.target\nWants=network-online.target",
                 f"{args.python} -m procs.supervisor --watch", "kairos-supervisor", "procs.supervisor",
                 secrets=("supervisor",))


def _unit(args: argparse.Namespace, settings: Settings, desc: str, deps: str, exec_start: str, ident: str,
          module: str, extra: str = "", secrets: tuple[str, ...] = ()) -> str:
    config_dir = f"Environment=KAIROS_CONFIG_DIR={args.config_dir}\n" if args.config_dir else ""
    optional = "" if settings.execution.mode == "live" else "-"  # live: a missing file fails the start
    env_files = "".join(f"EnvironmentFile={optional}{path}\n"
                        for path in (args.env_file, *(secrets_file(args, section) for section in secrets)))
    rw = " ".join(str(d) for d in writable(settings, args.workdir, module))
    cfg = settings.supervisor
    return (
        f"# Generated by scripts/gen_systemd.py from the supervisor's child table: do not edit.\n"
        f"[Unit]\nDescription={desc}\n{deps}\nPartOf={TARGET}\nStartLimitIntervalSec=0\n\n"
        f"[Service]\nType=notify\nNotifyAccess=main\nWatchdogSec={cfg.heartbeat_timeout_s:g}\n"
        f"User={args.user}\nGroup={args.user}\nWorkingDirectory={args.workdir}\n{config_dir}"
        f"Environment=PYTHONUNBUFFERED=1\n{env_files}ExecStart={exec_start}\n{extra}"
        f"Restart=always\nRestartSec={cfg.backoff_initial_s:g}\nKillMode=mixed\n"
        f"TimeoutStopSec={cfg.graceful_secs + 5:g}\n"
        f"SyslogIdentifier={ident}\nReadWritePaths={rw}\n{protect_home(args.python)}{HARDENING}\n"
        f"[Install]\nWantedBy={TARGET}\n"
    )


def sysusers(args: argparse.Namespace) -> str:
    return (f"# Generated by scripts/gen_systemd.py: install as /etc/sysusers.d/kairos.conf.\n"
            f"u {args.user} - \"KAIRÓS Core trading engine\" {args.workdir} /usr/sbin/nologin\n")


def tmpfiles(args: argparse.Namespace, settings: Settings) -> str:
    """Every directory a unit may write, owned by the service user (ReadWritePaths= needs them to exist)."""
    modules = {"procs.supervisor", *(role.module for role in ROLES)}
    dirs = sorted({d for module in modules for d in writable(settings, args.workdir, module)})
    return ("# Generated by scripts/gen_systemd.py: install as /etc/tmpfiles.d/kairos.conf.\n"
            + "".join(f"d {d} 0750 {args.user} {args.user} -\n" for d in dirs))


def target(units: list[str]) -> str:
    return (f"# Generated by scripts/gen_systemd.py: do not edit.\n[Unit]\nDescription=KAIRÓS Core trading engine\n"
            f"Wants={' '.join(units)}\nAfter={' '.join(units)}\n\n[Install]\nWantedBy=multi-user.target\n")


def generate(args: argparse.Namespace, settings: Settings) -> dict[str, str]:
    """File name -> text for every unit, the sysusers.d and tmpfiles.d files; start order is the reverse of the
    stop phases."""
    files = {SUPERVISOR: supervisor_unit(args, settings)}
    instances, earlier = [SUPERVISOR], []
    for roles in sorted(chosen(settings, args.sim).values(), key=lambda group: -group[0].stop_phase):
        names = [unit_name(r) for r in roles]
        file = names[0].split("@")[0] + "@.service" if roles[0].instance else names[0]
        files[file] = service(args, settings, roles[0], list(earlier))
        instances += names
        earlier += names
    files[TARGET] = target(instances)
    files["sysusers.d/kairos.conf"] = sysusers(args)
    files["tmpfiles.d/kairos.conf"] = tmpfiles(args, settings)
    return files


def env_file(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of a systemd EnvironmentFile (blank, # and ; lines skipped, one level of quotes
    removed), so the units are generated for the configuration they will run with; a missing file is empty."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    found = {}
    for number, line in enumerate(lines, 1):
        key, sep, value = line.strip().partition("=")
        if not key or key.startswith(("#", ";")):
            continue
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"line {number} is not KEY=VALUE", "", str(path))
        value = value.strip()
        quoted = len(value) > 1 and value[0] == value[-1] and value[0] in "'\""
        found[key.strip()] = value[1:-1] if quoted else value
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.gen_systemd", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "build" / "systemd")
    p.add_argument("--user", default="kairos", help="the service user and group (sysusers.d/kairos.conf creates it)")
    p.add_argument("--workdir", type=Path, default=ROOT)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--env-file", default="/etc/kairos/kairos.env",
                   help="per-host KAIROS__... settings, no secrets (also read here: units for the config they run)")
    p.add_argument("--secrets-dir", type=Path, default=Path("/etc/kairos"),
                   help="<section>.env secret files: venues.env (gate), supervisor.env (API token)")
    p.add_argument("--config-dir", type=Path, help="KAIROS_CONFIG_DIR for every unit (default: workdir/config)")
    p.add_argument("--sim", action="store_true", help="also a kairos-sim.service (staging without venues)")
    args = p.parse_args(argv)
    if why := hidden(args.workdir):  # generated anyway (to read or test them), but they would not start
        print(f"gen_systemd: warning: the units cannot see --workdir {args.workdir} ({why}): install the engine "
              "outside /home, /root and /tmp, e.g. /opt/kairos", file=sys.stderr)
    try:
        settings = config.load(args.config_dir, {**os.environ, **env_file(Path(args.env_file))})
    except (KairosError, OSError) as exc:
        print(f"gen_systemd: {exc}", file=sys.stderr)
        return EXIT_BOOT_ERROR
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in generate(args, settings).items():
        (args.out / name).parent.mkdir(exist_ok=True)
        (args.out / name).write_text(text)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
