"""Is a local TCP port free to listen on, and if not, who holds it."""

from __future__ import annotations

import shutil
import socket
import subprocess


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as servers set it: a socket in TIME_WAIT does not count as taken,
        # a listener (on this address or on 0.0.0.0) does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def holder_of(port: int) -> str:
    """A hint naming the listener on `port` (from `ss`, where available), else ''."""
    if shutil.which("ss") is None:
        return ""
    try:
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    # Last column looks like users:(("redis-server",pid=2203,fd=6)); keep it as the hint.
    return "; ".join(line.split()[-1] for line in out.splitlines() if "users:" in line)
