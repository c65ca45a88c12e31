"""`pd <process>` / `python -m services <process>`: run one process of the platform by name.

The container image's entrypoint: `docker run private-domain-ops scoring-worker`. The same
processes run without Docker as their own console scripts (`pd-scoring-worker`, ...).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> "module:function"; the console scripts in pyproject.toml point at the same functions.
PROCESSES = {
    "ingest": "services.ingest.__main__:main",
    "scoring-worker": "services.scoring.worker:main",
    "scoring-api": "services.scoring.api:main",
    "tagging-worker": "services.tagging.worker:main",
    "tagging-api": "services.tagging.api:main",
    "campaign-worker": "services.campaign.worker:main",
    "campaign-api": "services.campaign.api:main",
    "console": "services.console.app:main",
    "wecom-sender": "services.wecom_sender.worker:main",
    "topics": "services.topics:main",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pd", description="Run one process of the platform.")
    parser.add_argument("process", help=", ".join(PROCESSES) + " (a pd- prefix is accepted)")
    args, rest = parser.parse_known_args(argv)
    name = args.process.removeprefix("pd-")
    if name not in PROCESSES:
        parser.error(f"unknown process {args.process!r}: choose one of {', '.join(PROCESSES)}")
    module, function = PROCESSES[name].split(":")
    sys.argv = [f"pd-{name}", *rest]  # Faust's worker reads its own command line
    getattr(importlib.import_module(module), function)()


if __name__ == "__main__":
    main()
