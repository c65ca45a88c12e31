"""CPU accounting around a phase, so a rate can be read with what it cost (Linux /proc).

Server CPU near 100 % of a core means the server is CPU-bound; well below with a low rate means
it waits (on Redis, the broker, or the client). Machine CPU near 200 % on 2 cores means the
figures are limited by the machine, not by the server alone.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

CpuProbe = Callable[[], float | None]  # CPU seconds used so far, None when unknown

_TICKS = os.sysconf("SC_CLK_TCK")
_PROCESS_CPU = re.compile(rb"^process_cpu_seconds_total ([0-9.eE+-]+)$", re.MULTILINE)


def pid_probe(pid: int) -> CpuProbe:
    """CPU seconds of a local process we started."""

    def probe() -> float | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime

    return probe


def metrics_probe(base_url: str) -> CpuProbe:
    """CPU seconds a service reports on /metrics (the standard Prometheus process collector)."""

    def probe() -> float | None:
        try:
            with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as answer:
                found = _PROCESS_CPU.search(answer.read())
        except (urllib.error.URLError, OSError):
            return None
        return float(found.group(1)) if found else None

    return probe


def machine_busy_s() -> float:
    """CPU seconds all cores spent on anything but idling, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICKS


def processes_cpu_s(named: Mapping[str, tuple[str, ...]]) -> dict[str, float]:
    """CPU seconds so far of this machine's processes, summed per name: a process counts for the
    first name one of whose texts its command line holds (e.g. "pd-wecom-sender")."""
    spent = dict.fromkeys(named, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        name = next((n for n, texts in named.items() if any(t in command for t in texts)), None)
        if name is not None and (seconds := pid_probe(int(entry.name))()) is not None:
            spent[name] += seconds
    return spent
