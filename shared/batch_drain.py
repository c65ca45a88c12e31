"""Hand a Faust worker its input a fetched batch at a time, not a message at a time.

Faust delivers every message on its own: the fetch loop waits on two new tasks per message, the
conductor decodes it into an event and queues it for the agent's stream, and the stream hands it
on. On this project's machines that machinery costs more per message than everything a worker
does with it, so it bounded every worker's throughput (bench/scoring.py, "bare Faust").

`consume_in_batches` keeps all of Faust that matters for correctness — group membership and
assignment, table recovery from changelogs, flow control around rebalances, commits of acked
offsets — and replaces only the per-message delivery of the worker's input topics:

- `BatchDrainConsumer._drain_messages` (Faust's fetch loop) collects what one fetch returned for
  the input topics, marks each message as pending (so a rebalance waits for its ack), and puts
  the list on a queue Faust's flow control clears on a rebalance, as it clears agents' streams.
  Anything else it fetches (table changelogs during recovery) takes Faust's usual path.
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
from typing import Any, ClassVar

import faust
from aiokafka import AIOKafkaConsumer as KafkaClientConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP, Message

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]


class PromptFetchThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with a fetch wait of our choosing (set by consume_in_batches)."""

    fetch_max_wait_ms: ClassVar[int]

    def _create_worker_consumer(self, transport: Any) -> KafkaClientConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes a fixed 1,500 ms; aiokafka reads this when the consumer starts.
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


class BatchDrainConsumer(AIOKafkaConsumer):
    """Faust's consumer, fetching the input topics' messages into `batches` (see module doc).
    consume_in_batches makes a subclass per app with these set."""

    input_topics: ClassVar[frozenset[str]]
    batches: ClassVar[Any]  # the app's FlowControlQueue of message lists
    max_batch: ClassVar[int]
    fetch_thread: ClassVar[type[PromptFetchThread]]

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return self.fetch_thread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        fetcher_stopped = fetcher._stopped.is_set
        while not (self._stopped.is_set() or fetcher_stopped()):
            batch: list[Message] = []
            async for tp, message in self.getmany(timeout=1.0):
                if not await self._in_order(tp, message):
                    continue
                if message.topic in self.input_topics:
                    self.track_message(message)
                    batch.append(message)
                else:
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
            # A fetch returns everything buffered, which Faust's getmany interleaves round-robin
            # over the partitions, so a batch mixes the inputs' topics as they were fetched.
            chunks = [batch[start : start + self.max_batch] for start in range(0, len(batch), self.max_batch)]
            del batch  # pending messages are tracked weakly: dropped ones must not linger
            while chunks and not self.suspend_flow.is_set():
                # A rebalance suspends the flow and clears the queue: what it held, or what was
                # not put yet, is dropped unacked and fetched again from the committed offsets.
                await self.wait_first(self.batches.put(chunks.pop(0)), self.suspend_flow.wait())
            chunks.clear()
            await self.sleep(0)

    async def _in_order(self, tp: TP, message: Message) -> bool:
        """Whether to deliver `message`: not behind what was read (a re-fetch after a seek may
        repeat records). A jump ahead is recorded as a gap, so commits can move past offsets
        the broker will never deliver (as Faust's own loop does; InputWatch reports them)."""
        read = self._read_offset[tp]
        if read is not None and message.offset < read:
            return False
        if read is not None and message.offset > read + 1 and self.app.topics.acks_enabled_for(message.topic):
            await self._add_gap(tp, read + 1, message.offset)
        self._read_offset[tp] = message.offset
        return True


def consume_in_batches(
    app: faust.App, topic: faust.TopicT, handle: BatchHandler, *, max_batch: int, fetch_max_wait_s: float
) -> None:
    """Subscribe `app` to `topic` and hand `handle` batches of what was fetched (at most
    `max_batch` inputs each); ack them after it returns."""
    batches = app.FlowControlQueue(maxsize=1, clear_on_resume=True)
    fetch_thread = type(
        "WorkerFetchThread", (PromptFetchThread,), {"fetch_max_wait_ms": round(fetch_max_wait_s * 1000)}
    )
    consumer = {
        "input_topics": frozenset(topic.topics),
        "batches": batches,
        "max_batch": max_batch,
        "fetch_thread": fetch_thread,
    }
    app.transport.Consumer = type("WorkerConsumer", (BatchDrainConsumer,), consumer)
    app.topics.add(topic)  # subscribes the consumer; an acking topic, so acked offsets commit

    @app.task
    async def handle_batches() -> None:
        consumer = app.consumer
        while not app.should_stop:
            batch = await batches.get()
            try:
                await handle(batch)
            except Exception as error:  # unacked: a restarted worker reads the batch again
                log.exception("a batch could not be handled; stopping the worker")
                await app.crash(error)
                return
            for message in batch:
                consumer.ack(message)
