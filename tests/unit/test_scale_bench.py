"""bench/scale.py's growth table and its steps (the figures themselves come from a run)."""

from __future__ import annotations

import pytest

from bench.scale import Held, Latency, Step, parse_args, table


def step(customers: int, scoring_bytes: float, restart_s: float) -> Step:
    fast = Latency(1.25, 4.5)
    reads = {"/v1/matrix": fast, "/v1/leads": fast, "/metrics": fast}
    scoring = Held(scoring_bytes, restart_s, reads, scoring_bytes * 0.75)
    tagging = Held(800.0, 9.0, {"/v1/segments/count": fast, "/metrics": fast}, 700.0)
    return Step(customers, 1.0, 300.0, {"scoring": scoring, "tagging": tagging}, {"scoring snapshot": 120.0})


def test_each_figure_is_a_row_and_each_step_a_column() -> None:
    lines = table([step(10_000, 5_000, 4.0), step(1_000_000, 1_200, 61.5)]).splitlines()
    assert lines[0] == "| figure | 10,000 customers | 1,000,000 customers |"
    assert "| scoring worker resident bytes per customer | 5,000 | 1,200 |" in lines
    assert "| scoring worker restart to first event, s | 4.0 | 61.5 |" in lines
    assert "| scoring worker resident bytes per customer, restarted | 3,750 | 900 |" in lines
    assert "| scoring `/v1/matrix` p50 / p99, ms | 1.2 / 4.5 | 1.2 / 4.5 |" in lines
    assert "| tagging worker resident bytes per customer | 800 | 800 |" in lines
    assert "| tagging `/v1/segments/count` p50 / p99, ms | 1.2 / 4.5 | 1.2 / 4.5 |" in lines
    assert "|   of which scoring snapshot | 120 | 120 |" in lines


def test_steps_must_grow() -> None:
    assert parse_args(["--steps", "10,20"]).steps == [10, 20]
    with pytest.raises(SystemExit):
        parse_args(["--steps", "20,10"])
