"""``python -m tests.process.harness '<json>'``: the real Arbiter over a child table given as JSON.

JSON: {"watch": false, "children": [{"role": "gate", "argv": [...], "phase": 2, "halts": true,
"fail_closed": true, "secrets": ["venues"]}, ...]} in start order (``fail_closed`` defaults to ``halts``);
stop phases run from the lowest ``phase``. Settings come from the environment
exactly as for ``python -m procs.supervisor``.
"""

from __future__ import annotations

import json
import os
import sys

from kairos import config
from kairos.logs import setup_logging
from kairos.supervisor.arbiter import ROLE, Arbiter
from kairos.supervisor.child import ChildSpec
from kairos.supervisor.specs import Plan


def main() -> int:
    table = json.loads(sys.argv[1])
    children = table["children"]
    specs = tuple(ChildSpec(c["role"], tuple(c["argv"]), c.get("halts", False),
                            c.get("fail_closed", c.get("halts", False)), tuple(c.get("secrets", ())))
                  for c in children)
    phases = sorted({c.get("phase", 0) for c in children})
    plan = Plan(specs, tuple(tuple(c["role"] for c in children if c.get("phase", 0) == p) for p in phases))
    settings = config.load()
    setup_logging(ROLE, settings.logging)
    return Arbiter(settings, plan, table.get("watch", False), os.environ).run()


if __name__ == "__main__":
    sys.exit(main())
