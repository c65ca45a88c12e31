"""Scoring worker throughput benchmark (a benchmark, not a test: it prints figures, asserts nothing).

Method. The bench starts its own Tansu broker and redis-server on free ports (a running `make up`
stack is never touched; logs stay in a temp dir it prints), creates the contract topics with 3
partitions and pre-loads touchpoint.events.v1 with N contract-valid ingested events over C
customers, keyed by customer_id. Then, one process at a time, each with a fresh consumer group,
it lets a worker work through that backlog and polls its /metrics every 0.2 s:
- bare: bench/bare_worker.py, Faust taking the raw bytes in batches with no state (the issue's
  second reference), so that on a shared or noisy machine scoring/bare is the figure to compare;
- floor: bench/getmany_floor.py, aiokafka's getmany decoding each record's JSON and nothing else;
- peer: bench/quix_scoring.py, the scoring job on Quix Streams (the same domain code, state in
  Quix's RocksDB store and changelog, the same read model and outputs), in a venv of its own
  installed on first use (bench/quix-requirements.txt);
- scoring: ONE `python -m services.scoring.worker`, with the tests' short group timeouts.
For each: throughput = inputs taken (pd_events_processed_total, summed over outcomes) between the
first poll that saw any and the poll that saw all, divided by the time between those two polls,
so neither startup nor the poll interval counts (startup to /readyz and to the first input taken
is printed apart); worker CPU seconds over the same window (/proc/<pid>/stat), hence events per
CPU-second, next to the CPU of Tansu + Redis and of the rest of the machine. After the scoring
run: Redis memory per customer = used_memory after minus before (an empty Redis) divided by the
customers in pd:scoring:rank, with the changelog and intent.scores.v1 records it wrote.

Events: bench/worker_bench.py (`generate`): every contract type, weighted like private-domain
traffic, over customers of lognormal activity; every 50th checked against shared.events.

Issue target: >= 8,000 events/s for one worker process on a 2-core machine. Measured there for
reference: a naive Faust agent updating one table per event, ~3,100 events/s; Faust consuming
raw bytes in batches with no state, ~9,800 events/s.

Usage (from the repository root):
    .venv/bin/python -m bench.scoring [--events 100000] [--customers 10000] [--batch-max-events N]
        [--no-bare] [--profile /tmp/scoring.prof]   # --profile: the scoring worker under cProfile
The worker's other settings come from the environment as usual (e.g. BATCH_MAX_EVENTS=500).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python bench/scoring.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.worker_bench import ReadModel, WorkerBench, main
from services.scoring.read_model import LAST_INTERACTION, RANK, customer_key
from services.scoring.settings import ScoringSettings
from shared.topics import INTENT_SCORES
from stack.layout import Layout
from stack.prereqs import ensure_quix
from tests.scoring_worker import scoring_env

SCORING = WorkerBench(
    service="scoring",
    env=scoring_env,
    default_batch=ScoringSettings.model_fields["batch_max_events"].default,
    table="customers",
    output=INTENT_SCORES,
    read_model=ReadModel(
        unit="customer",
        counted_by="scored: ZCARD pd:scoring:rank",
        count=lambda client: client.zcard(RANK),
        key_pattern=customer_key("*"),
        key_name="customer JSON key",
        shared_name="rank + last_interaction sorted sets",
        shared_keys=lambda _: (RANK, LAST_INTERACTION),
    ),
    peer=lambda: [str(ensure_quix(Layout.of_repo().tools_dir)), "-m", "bench.quix_scoring"],
)

if __name__ == "__main__":
    raise SystemExit(main(SCORING))
