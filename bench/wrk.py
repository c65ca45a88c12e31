"""Run wrk with `events.lua` against one endpoint and read back what it counted."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

SCRIPT = Path(__file__).with_name("events.lua")
INSTALL_HINT = "wrk not found: install it with `sudo apt-get install wrk` (Debian/Ubuntu) and run again."

Mode = Literal["single", "batch", "seed"]


@dataclass(frozen=True)
class Pool:
    """The customers this bench run's events come from; shared by every phase of the run."""

    customers: int
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    # Mobile numbers 138xxxxxxxx, a block of them per run so runs rarely share customers.
    phone_base: int = field(default_factory=lambda: 13_800_000_000 + secrets.randbelow(90_000_000))


@dataclass(frozen=True)
class Load:
    url: str  # full URL of the endpoint, path included
    mode: Mode
    batch_size: int
    connections: int
    threads: int
    duration_s: int
    timeout_s: int
    api_key: str
    pool: Pool
    cpus: str | None = None  # taskset list for wrk, e.g. "1"


@dataclass
class Result:
    duration_s: float = 0.0
    requests: int = 0
    accepted: int = 0  # events the server said it accepted, in 202 responses only
    duplicates: int = 0  # accepted but reported as seen before: should stay 0, ids are fresh
    rejected_in_202: int = 0  # events a 202 batch answer listed as rejected
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    samples: dict[int, str] = field(default_factory=dict)
    socket_errors: dict[str, int] = field(default_factory=dict)
    client_cpu_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.accepted / self.duration_s if self.duration_s else 0.0

    @property
    def non_202(self) -> int:
        return sum(n for code, n in self.statuses.items() if code != 202)

    @property
    def failed_sockets(self) -> int:
        # "status" is wrk's own count of non-2xx/3xx answers, already in `statuses`.
        return sum(n for name, n in self.socket_errors.items() if name != "status")


def find_wrk() -> str | None:
    return shutil.which("wrk")


def command(load: Load, wrk: str) -> list[str]:
    args = [
        wrk,
        f"-t{load.threads}",
        f"-c{max(load.connections, load.threads)}",
        f"-d{load.duration_s}s",
        f"--timeout={load.timeout_s}s",
        f"--script={SCRIPT}",
        load.url,
        "--",
        load.mode,
        str(load.batch_size),
        str(load.pool.customers),
        load.pool.token,
        secrets.token_hex(4),  # run token: event ids never repeat across wrk runs
        str(load.pool.phone_base),
        str(load.threads),
    ]
    # Pinning keeps the client on its own core when asked, so it cannot steal the server's.
    return ["taskset", "-c", load.cpus, *args] if load.cpus else args


def run(load: Load, wrk: str, on_progress: Callable[[float, int, int], None]) -> Result:
    """Run wrk to completion; on_progress(seconds, events/s, non-202 so far) about every 2 s."""
    env = {**os.environ, "BENCH_API_KEY": load.api_key}
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command(load, wrk), stdout=out, stderr=subprocess.PIPE, text=True, env=env)
        assert process.stderr is not None
        _relay_progress(process, load.threads, on_progress)
        # wait4 rather than wait(): it also tells how much CPU the client used.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{text}")
    result = parse(text)
    result.client_cpu_s = usage.ru_utime + usage.ru_stime
    return result


def _relay_progress(
    process: subprocess.Popen[str], threads: int, on_progress: Callable[[float, int, int], None]
) -> None:
    """Sum the threads' cumulative counters and report a rate every two seconds; end a seed run
    once all threads said they are done."""
    assert process.stderr is not None
    latest: dict[str, tuple[int, int]] = {}
    seeded: set[str] = set()
    start: int | None = None
    last_t, last_accepted = 0, 0
    for line in process.stderr:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "seeded":
            seeded.add(parts[1])
            if len(seeded) == threads:
                process.send_signal(signal.SIGINT)
            continue
        if len(parts) != 5 or parts[0] != "progress":
            print(f"    wrk: {line.rstrip()}", flush=True)
            continue
        thread, t, accepted, others = parts[1], int(parts[2]), int(parts[3]), int(parts[4])
        latest[thread] = (accepted, others)
        if start is None:
            start, last_t = t, t
        if t - last_t >= 2:
            total = sum(a for a, _ in latest.values())
            on_progress(
                t - start, (total - last_accepted) // (t - last_t), sum(o for _, o in latest.values())
            )
            last_t, last_accepted = t, total


def parse(text: str) -> Result:
    """Read the `result ...` lines events.lua prints when wrk is done."""
    result = Result()
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if parts[0] != "result" or len(parts) < 3:
            continue
        name, values = parts[1], parts[2:]
        if name == "duration_us":
            result.duration_s = int(values[0]) / 1e6
        elif name in ("requests", "accepted", "duplicates", "rejected_in_202"):
            setattr(result, name, int(values[0]))
        elif name == "latency_us":
            setattr(result, f"p{values[0]}_ms", int(values[1]) / 1000)
        elif name == "status":
            result.statuses[int(values[0])] = int(values[1])
        elif name == "sample":
            result.samples[int(values[0])] = values[1] if len(values) > 1 else ""
        elif name == "socket_error":
            result.socket_errors[values[0]] = int(values[1])
    return result
