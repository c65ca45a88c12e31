"""Start `bare_endpoint` as one uvicorn process (uvloop + httptools, like pd-ingest) for a bench run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BareServer:
    url: str
    pid: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def bare_server(bootstrap: str, topic: str, partitions: int, startup_s: float = 30.0) -> Iterator[BareServer]:
    port = free_port()
    env = {
        **os.environ,
        "BENCH_BARE_BOOTSTRAP": bootstrap,
        "BENCH_BARE_TOPIC": topic,
        "BENCH_BARE_PARTITIONS": str(partitions),
    }
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "bench.bare_endpoint:app_from_env",
        "--app-dir", str(REPO_ROOT), "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(process, url, startup_s, log)
            yield BareServer(url, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(process: subprocess.Popen[bytes], url: str, startup_s: float, log: IO[str]) -> None:
    # healthz answers only once the lifespan has started the producer, i.e. the broker answered.
    deadline = time.monotonic() + startup_s
    while not healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"bare endpoint did not start (broker reachable?):\n{_tail(log)}")
        time.sleep(0.2)


def _tail(log: IO[str]) -> str:
    log.seek(0)
    return "\n".join(log.read().splitlines()[-20:])
