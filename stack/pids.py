"""Processes by pid, told apart from a later process that reuses the pid (Linux /proc)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessRef:
    """A pid plus its start time (clock ticks since boot): together they name one process."""

    pid: int
    started: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        started = _start_ticks(pid)
        return None if started is None else cls(pid, started)

    def alive(self) -> bool:
        """Still running (zombies count as gone: they hold no port and run no code)."""
        stat = _stat_fields(self.pid)
        return stat is not None and stat[0] != "Z" and int(stat[19]) == self.started

    def command_line(self) -> str:
        try:
            raw = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return ""
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()

    def signal(self, signum: int) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # Supervised children lead their own process group; signal the group so helpers
            # they spawned go too. Otherwise only the process itself.
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, signum)
            else:
                os.kill(self.pid, signum)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, ...]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return raw[raw.rindex(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def wait_gone(refs: list[ProcessRef], timeout_s: float) -> list[ProcessRef]:
    """Wait until every process has exited or time is up; return those still alive."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [ref for ref in refs if ref.alive()]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def terminate(refs: list[ProcessRef], timeout_s: float = 10.0) -> list[ProcessRef]:
    """SIGTERM, then SIGKILL whatever outlives the deadline; return any that survive even that."""
    for ref in refs:
        ref.signal(signal.SIGTERM)
    stubborn = wait_gone(refs, timeout_s)
    for ref in stubborn:
        ref.signal(signal.SIGKILL)
    return wait_gone(stubborn, 5.0)
