"""Where the stack keeps its generated files: `.run/` at the repository root."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path  # the repository

    @classmethod
    def of_repo(cls) -> Layout:
        # stack/ sits at the repository root (editable install), so .run/ lands next to it
        # whatever directory pd-stack is started from.
        return cls(Path(__file__).resolve().parent.parent)

    @property
    def run_dir(self) -> Path:
        return self.root / ".run"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def durable_dir(self) -> Path:
        """What the durable mode keeps across `down` and `up`: the broker's objects, Redis's AOF."""
        return self.run_dir / "durable"

    @property
    def tools_dir(self) -> Path:
        """Tools installed in venvs of their own (their pins clash with ours): moto's S3 server."""
        return self.run_dir / "tools"

    @property
    def supervisor_conf(self) -> Path:
        return self.run_dir / "supervisord.conf"

    @property
    def supervisor_pidfile(self) -> Path:
        return self.run_dir / "supervisord.pid"

    @property
    def supervisor_socket(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def supervisor_log(self) -> Path:
        return self.logs_dir / "supervisord.log"

    @property
    def state_file(self) -> Path:
        """The pids `up` started, which `down` checks are gone."""
        return self.run_dir / "stack.json"

    def log_of(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    @staticmethod
    def venv_bin() -> Path:
        """Console scripts of the environment pd-stack runs in (`.venv/bin` after make install)."""
        return Path(sys.prefix) / "bin"
