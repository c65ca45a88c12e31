"""Hand a Faust worker its input a fetched batch at a time, not a message at a time.

Faust delivers every message on its own: the fetch loop waits on two new tasks per message, the
conductor decodes it into an event and queues it for the agent's stream, and the stream hands it
on. On this project's machines that machinery costs more per message than everything a worker
does with it, so it bounded every worker's throughput (bench/scoring.py, "bare Faust").

`consume_in_batches` keeps all of Faust that matters for correctness — group membership and
assignment, table recovery from changelogs, flow control around rebalances, commits of acked
offsets — and replaces only the per-message delivery of the worker's input topics:

- Faust's fetch loop is replaced (`fetch_in_batches` in shared/faust_runtime.py, where every
  use of Faust's internals lives): it collects what one fetch returned for the input topics,
  marks each message as pending (so a rebalance waits for its ack), and puts the list on a queue
  Faust's flow control clears on a rebalance, as it clears agents' streams. The tables'
  changelog records (during recovery) go to Faust's Recovery a run per partition and fetch;
  anything else takes Faust's usual path.
- One task takes the batches off that queue, calls the worker's handler, and acks the messages
  only when the handler has returned, i.e. when their effects are durable. Acked offsets are
  committed by Faust as before. The handler runs in its own task because Faust cancels the fetch
  loop on every rebalance; a batch half-way through its effects must not be cancelled with it.
- Fetches wait at most `fetch_max_wait_ms` at the broker, a setting, where Faust fixes 1,500 ms.
  Kafka answers a waiting fetch as soon as data arrives, but Tansu holds it for the whole wait,
  so with 1.5 s every hop of the pipeline adds up to 1.5 s of latency (README, Pipeline).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import faust
from faust.types import Message

from shared.faust_runtime import batch_taken, fetch_in_batches

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]


def consume_in_batches(
    app: faust.App, topic: faust.TopicT, handle: BatchHandler, *, max_batch: int, fetch_max_wait_s: float
) -> None:
    """Subscribe `app` to `topic` and hand `handle` batches of what was fetched (at most
    `max_batch` inputs each); ack them after it returns."""
    batches = fetch_in_batches(app, topic, max_batch=max_batch, fetch_max_wait_s=fetch_max_wait_s)

    @app.task
    async def handle_batches() -> None:
        consumer = app.consumer
        while not app.should_stop:
            batch = await batches.get()
            batch_taken(app, batch)
            try:
                await handle(batch)
            except Exception as error:  # unacked: a restarted worker reads the batch again
                log.exception("a batch could not be handled; stopping the worker")
                await app.crash(error)
                return
            for message in batch:
                consumer.ack(message)
