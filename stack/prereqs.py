"""Machine prerequisites the stack and the test suite share: the machine's `redis-server`, and
Prometheus's `promtool` for checking the alerting rules (optional: the tests fall back to a
structural check without it).

`pd-stack up` calls `ensure_redis_server()`; `make install` runs `python -m stack.prereqs`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


class MissingPrerequisite(RuntimeError):
    """Something the stack needs is not on this machine and cannot be installed from here."""


def ensure_redis_server() -> str:
    """Path of `redis-server`, installing Debian's package first when missing and running as root."""
    return _ensure("redis-server", "redis-server", "Redis 7+")


def ensure_promtool() -> str:
    """Path of `promtool` (Debian's `prometheus` package, without its recommends)."""
    return _ensure("promtool", "prometheus", "Prometheus's promtool", ["--no-install-recommends"])


def _ensure(binary: str, package: str, what: str, options: list[str] | None = None) -> str:
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0:
        raise MissingPrerequisite(f"{binary} is not installed: run `sudo apt-get install {package}`")
    if shutil.which("apt-get") is None:
        raise MissingPrerequisite(f"{binary} is not installed and apt-get is missing: install {what}")
    print(f"{binary} is missing: installing it (apt-get update && apt-get install -y {package})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", *(options or []), package]
    for command in (["apt-get", "update"], install):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            raise MissingPrerequisite(f"`{' '.join(command)}` failed: install {package} by hand")
    found = shutil.which(binary)
    if not found:
        raise MissingPrerequisite(f"apt-get installed {package} but {binary} is not on PATH")
    return found


def main() -> None:
    try:
        print(f"redis-server: {ensure_redis_server()}")
    except MissingPrerequisite as error:
        sys.exit(f"error: {error}")
    try:
        print(f"promtool: {ensure_promtool()}")
    except MissingPrerequisite as error:  # optional: the rule tests fall back to a structural check
        print(f"warning: {error}; the alerting rules will get a structural check only")


if __name__ == "__main__":
    main()
