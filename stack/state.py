"""The pids `up` started, kept in `.run/stack.json` so `down` can prove they are gone.

supervisord is the authority while it runs; this record matters when it does not (killed
with -9, say), leaving children that would otherwise hold the ports.
"""

from __future__ import annotations

import json
from pathlib import Path

from .pids import ProcessRef


def save(path: Path, refs: dict[str, ProcessRef]) -> None:
    path.write_text(json.dumps({name: [ref.pid, ref.started] for name, ref in refs.items()}, indent=1))


def load(path: Path) -> dict[str, ProcessRef]:
    try:
        raw = json.loads(path.read_text())
        return {name: ProcessRef(int(pid), int(started)) for name, (pid, started) in raw.items()}
    except (OSError, ValueError, TypeError):
        return {}
