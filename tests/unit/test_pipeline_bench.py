"""bench/pipeline.py's per-worker cost line, from two scrapes of a worker's /metrics."""

from __future__ import annotations

from bench.pipeline import Snap, Window, parse_snap

METRICS = """\
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu}
# TYPE pd_events_processed_total counter
pd_events_processed_total{{outcome="processed",service="scoring"}} {inputs}
# TYPE pd_worker_batch_seconds histogram
pd_worker_batch_seconds_bucket{{le="+Inf",service="scoring"}} {batches}
pd_worker_batch_seconds_count{{service="scoring"}} {batches}
pd_worker_batch_seconds_sum{{service="scoring"}} 1.0
"""


def window(before: Snap, after: Snap) -> Window:
    return Window({"scoring": before}, {"scoring": after}, 0, 0, 10.0, 0.0, 0.0, {}, (0.0, 0.0), 0.0)


def test_a_workers_cost_is_its_cpu_per_input_and_its_inputs_per_batch() -> None:
    before = parse_snap(METRICS.format(cpu=10.0, inputs=1_000, batches=10), 0.0)
    after = parse_snap(METRICS.format(cpu=13.5, inputs=36_000, batches=80), 10.0)
    cost = window(before, after).cost("scoring")
    assert cost == "scoring 35 % of a core, 100 µs an input, 500 inputs a batch"


def test_a_worker_that_took_nothing_has_no_cost_to_show() -> None:
    snap = parse_snap(METRICS.format(cpu=10.0, inputs=1_000, batches=10), 0.0)
    assert window(snap, snap).cost("scoring") == "scoring n/a"
