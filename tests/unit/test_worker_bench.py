"""The worker benchmarks' report (bench/worker_bench.py): each reference's figures and the ratios."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import bench
from bench.worker_bench import REPOSITORY, Run, Sample, report_rows


def run(events: int, seconds: float, cpu_s: float) -> Run:
    first = Sample(at=10.0, inputs=0, batches=0, cpu_s=1.0, outcomes={})
    last = Sample(at=10.0 + seconds, inputs=events, batches=10, cpu_s=1.0 + cpu_s, outcomes={})
    return Run(started=0.0, ready_at=1.0, first=first, last=last, machine_busy_s=2.0, others_cpu_s=0.5)


def test_the_worker_is_shown_next_to_the_bare_worker_and_the_floor_with_both_ratios() -> None:
    runs = {
        "scoring": run(10_000, 1.0, 0.5),  # 10,000/s, 20,000 per CPU-second
        "bare": run(10_000, 2.0, 0.5),  # 5,000/s, 20,000 per CPU-second
        "floor": run(100_000, 1.0, 0.5),  # 200,000 per CPU-second
    }
    args = argparse.Namespace(batch_max_events=None)
    rows = report_rows("scoring", runs, args, 500, [("customers", "1,000")])
    assert rows[0] == (
        "| figure | scoring worker | bare Faust | getmany floor | scoring/bare | scoring/floor |"
    )
    rate = next(row for row in rows if row.startswith("| events/s"))
    assert rate.endswith("| 2.00 | 0.10 |")
    per_cpu = next(row for row in rows if row.startswith("| events per worker CPU-second"))
    assert per_cpu.endswith("| 1.00 | 0.10 |")
    assert rows[-1] == "| customers | 1,000 | | | | |"


def test_without_references_the_worker_stands_alone() -> None:
    rows = report_rows(
        "tagging", {"tagging": run(5_000, 1.0, 1.0)}, argparse.Namespace(batch_max_events=7), 500, []
    )
    assert rows[0] == "| figure | tagging worker |" and "| BATCH_MAX_EVENTS | 7 |" in rows


def test_the_peer_is_a_column_and_a_ratio_of_its_own() -> None:
    runs = {
        "scoring": run(10_000, 1.0, 0.5),  # 20,000 per CPU-second
        "peer": run(10_000, 2.0, 1.0),  # 10,000 per CPU-second
    }
    rows = report_rows("scoring", runs, argparse.Namespace(batch_max_events=None), 500, [])
    assert rows[0] == "| figure | scoring worker | Quix Streams peer | scoring/peer |"
    per_cpu = next(row for row in rows if row.startswith("| events per worker CPU-second"))
    assert per_cpu.endswith("| 2.00 |")


def test_the_quix_peer_needs_none_of_what_its_venv_lacks() -> None:
    """bench/quix_scoring.py runs in a venv of Quix Streams' own (bench/quix-requirements.txt),
    which has no Faust, FastAPI or uvicorn: the modules of ours it imports must not need them."""
    peer = Path(bench.__file__).with_name("quix_scoring.py")
    ours = [
        ast.unparse(node)
        for node in ast.walk(ast.parse(peer.read_text()))
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.split(".")[0] in ("services", "shared")
    ]
    assert "from services.scoring import read_model" in ours and len(ours) > 5, ours
    absent = ("faust", "mode", "fastapi", "uvicorn", "starlette")
    blocked = f"import sys\nfor name in {absent!r}: sys.modules[name] = None\n"
    script = blocked + "".join(f"{line}\n" for line in ours)
    imported = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPOSITORY)
    assert imported.returncode == 0, imported.stderr[-2000:]
    pinned = peer.with_name("quix-requirements.txt").read_text().splitlines()
    for package in ("quixstreams==", "redis==", "orjson==", "prometheus_client==", "pydantic=="):
        assert any(line.startswith(package) for line in pinned), package
