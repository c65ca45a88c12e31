"""Machine prerequisites the stack and the test suite share: the machine's `redis-server`.

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
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0:
        raise MissingPrerequisite("redis-server is not installed: run `sudo apt-get install redis-server`")
    if shutil.which("apt-get") is None:
        raise MissingPrerequisite("redis-server is not installed and apt-get is missing: install Redis 7+")
    print("redis-server is missing: installing it (apt-get update && apt-get install -y redis-server)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "redis-server"]):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            raise MissingPrerequisite(f"`{' '.join(command)}` failed: install redis-server by hand")
    found = shutil.which("redis-server")
    if not found:
        raise MissingPrerequisite("apt-get installed redis-server but it is not on PATH")
    return found


def main() -> None:
    try:
        print(f"redis-server: {ensure_redis_server()}")
    except MissingPrerequisite as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
