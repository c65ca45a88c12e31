"""Machine prerequisites the stack and the test suite share: the machine's `redis-server`; npm,
to install the browser assets the console and the APIs' `/docs` serve (`web/`, shared/web_assets.py);
Debian's `chromium` for the console's browser tests; and Prometheus's `promtool` for checking the
alerting rules (optional: the tests fall back to a structural check without it).

`pd-stack up` calls `ensure_redis_server()`; `make install` runs `python -m stack.prereqs`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
MOTO_REQUIREMENTS = Path(__file__).resolve().with_name("moto-requirements.txt")
QUIX_REQUIREMENTS = Path(__file__).resolve().parent.parent / "bench" / "quix-requirements.txt"


class MissingPrerequisite(RuntimeError):
    """Something the stack needs is not on this machine and cannot be installed from here."""


def ensure_redis_server() -> str:
    """Path of `redis-server`, installing Debian's package first when missing and running as root."""
    return _ensure("redis-server", "redis-server", "Redis 7+")


def ensure_s3rver(web_dir: Path = WEB_DIR) -> tuple[str, Path]:
    """Node and s3rver's entry script (npm, pinned in web/ as a development dependency)."""
    node = shutil.which("node")
    if node is None:
        raise MissingPrerequisite("the durable mode needs Node.js (node) for s3rver: install nodejs")
    script = ensure_web_assets(web_dir) / "s3rver" / "bin" / "s3rver.js"
    if not script.exists():
        raise MissingPrerequisite(f"s3rver is not installed in {web_dir}: run `make install`")
    return node, script


def ensure_moto(tools_dir: Path) -> Path:
    """moto's S3 server (`moto_server`) in a venv of its own under `tools_dir` (its pins clash with
    ours), from stack/moto-requirements.txt.

    The fault suite's object store for Tansu: it keeps objects in memory, so they outlive a broker
    restart but not moto's own, and it holds up under load where s3rver does not (README, "Fault
    suite")."""
    return ensure_tool_venv(tools_dir / "moto", MOTO_REQUIREMENTS, "moto's S3 server") / "bin" / "moto_server"


def ensure_quix(tools_dir: Path) -> Path:
    """The Python of a venv under `tools_dir` with Quix Streams, the scoring worker's peer in
    bench.scoring (bench/quix_scoring.py), from bench/quix-requirements.txt (its pins clash with
    ours); it imports our domain modules from the repository."""
    return ensure_tool_venv(tools_dir / "quix", QUIX_REQUIREMENTS, "Quix Streams") / "bin" / "python"


def ensure_tool_venv(venv: Path, requirements: Path, what: str) -> Path:
    """`venv`, (re)installed from `requirements` when those pins are newer than the last install."""
    stamp = venv / ".installed"
    if _installed_since(stamp, requirements):
        return venv
    print(f"installing {what}, pinned in {requirements.name}, into {venv}")
    commands = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", "-r", str(requirements)],
    ]
    for command in commands:
        if subprocess.run(command, check=False).returncode != 0:
            raise MissingPrerequisite(f"`{' '.join(command)}` failed")
    stamp.touch()
    return venv


def ensure_promtool() -> str:
    """Path of `promtool` (Debian's `prometheus` package, without its recommends)."""
    return _ensure("promtool", "prometheus", "Prometheus's promtool", ["--no-install-recommends"])


def ensure_chromium() -> str:
    """Debian's Chromium, which the browser tests drive (a test tool's own browser download cannot
    work on a closed network)."""
    return _ensure("chromium", "chromium", "Chromium")


def ensure_cjk_font() -> None:
    """A Chinese font, so the screenshots the browser tests take of zh-CN pages show characters."""
    listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    if not listed.stdout.strip():
        _apt_install("fonts-wqy-microhei", [])


def ensure_web_assets(web_dir: Path = WEB_DIR) -> Path:
    """`npm ci` in web/ when its lock file is newer than the last install; returns node_modules."""
    modules = web_dir / "node_modules"
    stamp = modules / ".installed"
    lock = web_dir / "package-lock.json"
    if _installed_since(stamp, lock):
        return modules
    npm = _ensure("npm", "npm", "Node.js's npm")
    print(f"installing the browser assets pinned in {lock} (npm ci)")
    # --ignore-scripts: we only copy files out of these packages; none of their scripts may run.
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(web_dir)]
    if subprocess.run(command, check=False).returncode != 0:
        raise MissingPrerequisite(f"`{' '.join(command)}` failed")
    stamp.touch()
    return modules


def _installed_since(stamp: Path, pins: Path) -> bool:
    """An install left its stamp after the pins it installed from last changed."""
    return stamp.exists() and stamp.stat().st_mtime >= pins.stat().st_mtime


def _ensure(binary: str, package: str, what: str, options: list[str] | None = None) -> str:
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0:
        raise MissingPrerequisite(f"{binary} is not installed: run `sudo apt-get install {package}`")
    if shutil.which("apt-get") is None:
        raise MissingPrerequisite(f"{binary} is not installed and apt-get is missing: install {what}")
    print(f"{binary} is missing: installing it (apt-get update && apt-get install -y {package})")
    _apt_install(package, options or [])
    found = shutil.which(binary)
    if not found:
        raise MissingPrerequisite(f"apt-get installed {package} but {binary} is not on PATH")
    return found


def _apt_install(package: str, options: list[str]) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingPrerequisite(f"{package} is not installed: run `sudo apt-get install {package}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", *options, package]):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            raise MissingPrerequisite(f"`{' '.join(command)}` failed: install {package} by hand")


def main() -> None:
    try:
        print(f"redis-server: {ensure_redis_server()}")
    except MissingPrerequisite as error:
        sys.exit(f"error: {error}")
    try:
        print(f"web assets: {ensure_web_assets()}")
    except MissingPrerequisite as error:
        sys.exit(f"error: {error}")
    try:
        print(f"chromium: {ensure_chromium()}")
        ensure_cjk_font()
    except MissingPrerequisite as error:  # the stack runs without it; the browser tests say so
        print(f"warning: {error}; the console's browser tests cannot run")
    try:
        print(f"promtool: {ensure_promtool()}")
    except MissingPrerequisite as error:  # optional: the rule tests fall back to a structural check
        print(f"warning: {error}; the alerting rules will get a structural check only")


if __name__ == "__main__":
    main()
