"""bench/scale.py's growth table and its steps (the figures themselves come from a run)."""

from __future__ import annotations

import pytest

from bench.scale import Latency, Step, parse_args, table


def step(customers: int, worker_bytes: float, restart_s: float) -> Step:
    fast = Latency(1.25, 4.5)
    return Step(customers, 1.0, worker_bytes, 300.0, fast, fast, fast, restart_s)


def test_each_figure_is_a_row_and_each_step_a_column() -> None:
    text = table([step(10_000, 5_000, 4.0), step(1_000_000, 1_200, 61.5)])
    lines = text.splitlines()
    assert lines[0] == "| figure | 10,000 customers | 1,000,000 customers |"
    assert "| worker resident bytes per customer | 5,000 | 1,200 |" in lines
    assert "| worker restart to first event, s | 4.0 | 61.5 |" in lines
    assert "| /v1/matrix p50 / p99, ms | 1.2 / 4.5 | 1.2 / 4.5 |" in lines


def test_steps_must_grow() -> None:
    assert parse_args(["--steps", "10,20"]).steps == [10, 20]
    with pytest.raises(SystemExit):
        parse_args(["--steps", "20,10"])
