"""Secrets only where needed: the environment each child is spawned with.

The supervisor's own environment carries every secret (it hands the venue keys on and serves the API
token), but a child gets only the sections its role lists in ``ChildSpec.secrets`` (kairos/supervisor/
specs.py): the gate the venue keys, nobody the API token. A secret variable is ``KAIROS__<SECTION>__...
__<NAME>`` whose last part names a `Secret` field (config.SECRET_NAMES), or kairosctl's own copy of
the API token (``KAIROS_API_TOKEN``, often exported in the shell that starts the engine); everything
else passes unchanged.
scripts/gen_systemd.py applies the same table to the units' EnvironmentFile lines.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from kairos.config import ENV_PREFIX, SECRET_NAMES

CLIENT_SECRETS = {"KAIROS_API_TOKEN": "supervisor"}  # kairosctl's variable: the supervisor section's secret


def section(name: str) -> str | None:
    """The config section of a secret variable (``venues``, ``supervisor``), None if it is not one."""
    if not name.startswith(ENV_PREFIX):
        return CLIENT_SECRETS.get(name)
    parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
    return parts[0] if len(parts) > 1 and parts[-1] in SECRET_NAMES else None


def child_env(env: Mapping[str, str], sections: Collection[str]) -> dict[str, str]:
    """``env`` without the secrets of any section not in ``sections``."""
    return {k: v for k, v in env.items() if section(k) in (None, *sections)}
