"""The only module that touches Faust's and aiokafka's private or undocumented names.

Everywhere else the workers use Faust (faust-streaming) and aiokafka through their documented
API. What they need beyond it is here, each piece with the reason it is needed:

- **Whole fetches as batches** (`fetch_in_batches`, for shared/batch_drain.py). Faust's per-message
  delivery costs more than a worker's own work per message, so `BatchDrainConsumer` overrides
  Faust's fetch loop (`Consumer._drain_messages`) and reuses what that loop uses: the stop events
  (`_stopped`), read offsets and gaps (`_read_offset`, `_add_gap`), pending-message tracking
  (`track_message`), flow control (`suspend_flow`, `wait_first`) and the conductor's callback for
  everything that is not input. It is installed by replacing `app.transport.Consumer`, with a
  consumer thread (`_new_consumer_thread`) whose `_create_worker_consumer` sets aiokafka's
  `_fetch_max_wait_ms`, which Faust fixes at 1,500 ms. The batches go through an
  `app.FlowControlQueue`, which Faust clears on a rebalance as it clears agents' streams.
- **Input held while an assignment completes** (`stop_input_until_recovery_resumes`, for
  shared/rebalance.py): `app.on_rebalance_complete` and `consumer.stop_flow()`, relying on
  faust-streaming's `Recovery` to resume the flow only after it has sought to the committed
  offsets.
- **Batches the monitor knows of** (`batch_taken`, for shared/batch_drain.py): Faust's consumer
  logs a partition with records to read and no stream event since start as stalled; the monitor
  learns of an event only from a stream (`Monitor.stream_inbound_time`), so each batch taken
  sets it for its partitions.
- **Tables whose rows are our own records** (`FaustCodec`, `codec_table`, for
  shared/record_table.py): a codec is a `codecs.Codec` with `_dumps`/`_loads`, registered with
  `codecs.register`; a table's (and its changelog's) serializers can only be chosen by overriding
  `Table._serializer_from_type`; a table built by hand takes `app.tables.beacon`.
- **Tables restored in runs** (`RecordTable`, `ChangelogRun`): Faust's Recovery takes one event
  per changelog record off `app.tables.changelog_queue`, at ~100 µs a record. The fetch loop above
  puts one `ChangelogRun` per partition and fetch there instead (after `app.flow_control`, as the
  conductor does), relying on Recovery reading only the event's `message` (partition, offset)
  and passing its buffered events to `Table.apply_changelog_batch`, which RecordTable overrides
  to write the rows into the in-memory store (`data`). Faust's store notes each restored row's
  partition (`_key_partition`, about 40 bytes a customer for good) to drop the rows of partitions
  it no longer holds when recovery completes; RecordTable's `on_recovery_completed` drops them
  itself, by the partition each row says it belongs to (`FaustCodec.row_partition`), and the
  rows written since restored too.
- **Worker state the services ask about**: `recovery_done(app)` (`app.tables.recovery.completed`:
  tables restored, so timers may act on them), `owned_partitions(app)`
  (`app.assignor.assigned_actives()`: partitions this worker holds actively) and
  `table_rows(table)` (`table.data`: the in-memory store, read and written directly because
  workers write their changelog records themselves).

`PRIVATE_NAMES` lists every such name with the class (or module) that must have it, and
`VERIFIED_WITH` the versions this module was checked against, which pyproject.toml and
constraints.txt pin. tests/unit/test_faust_runtime.py fails when an installed library lacks a
name, when this module uses a private name the list does not declare, or when the installed or
pinned versions differ from `VERIFIED_WITH`. A name can keep existing and change meaning: to
upgrade Faust, mode or aiokafka, bump the pins, run the unit tests and the crash tests
(tests/integration/test_*_crash.py, which kill workers mid-batch and during rebalances), and only
then update `VERIFIED_WITH`.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from time import monotonic
from typing import Any, ClassVar, Protocol

import faust
from aiokafka import AIOKafkaConsumer as KafkaClientConsumer
from faust.assignor import PartitionAssignor
from faust.sensors.monitor import Monitor
from faust.serializers import codecs
from faust.stores.memory import Store as MemoryStore
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.conductor import Conductor
from faust.transport.consumer import Fetcher
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustKafkaConsumer
from faust.transport.drivers.aiokafka import Transport as FaustKafkaTransport
from faust.types import TP, Message

VERIFIED_WITH = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}

# Every private or undocumented name this module relies on, with the class (or module) that has
# it, as a class attribute or as an attribute its instances get in __init__.
PRIVATE_NAMES: list[tuple[object, str]] = [
    # fetch_in_batches: installing the consumer
    (faust.App, "transport"),
    (faust.App, "topics"),
    (faust.App, "FlowControlQueue"),
    (FaustKafkaTransport, "Consumer"),
    (Conductor, "add"),
    (Conductor, "acks_enabled_for"),
    # BatchDrainConsumer: Faust's fetch loop and what it uses
    (FaustKafkaConsumer, "_new_consumer_thread"),
    (FaustKafkaConsumer, "_drain_messages"),
    (FaustKafkaConsumer, "_stopped"),
    (FaustKafkaConsumer, "_read_offset"),
    (FaustKafkaConsumer, "_add_gap"),
    (FaustKafkaConsumer, "getmany"),
    (FaustKafkaConsumer, "track_message"),
    (FaustKafkaConsumer, "callback"),
    (FaustKafkaConsumer, "wait_first"),
    (FaustKafkaConsumer, "suspend_flow"),
    (FaustKafkaConsumer, "sleep"),
    (Fetcher, "_stopped"),
    # PromptFetchThread: the fetch wait
    (AIOKafkaConsumerThread, "_create_worker_consumer"),
    (KafkaClientConsumer, "_fetch_max_wait_ms"),
    # stop_input_until_recovery_resumes
    (faust.App, "on_rebalance_complete"),
    (FaustKafkaConsumer, "stop_flow"),
    # FaustCodec, codec_table
    (codecs.Codec, "_dumps"),
    (codecs.Codec, "_loads"),
    (codecs, "register"),
    (faust.Table, "_serializer_from_type"),
    (faust.App, "tables"),
    (TableManager, "beacon"),
    (TableManager, "add"),
    # batch_taken: the monitor's record of when a partition's stream last took an event
    (faust.App, "monitor"),
    (Monitor, "stream_inbound_time"),
    # RecordTable restored in runs: the changelog queue Recovery reads, the flow control the
    # conductor waits for, the table hooks Recovery calls and the in-memory store's rows
    (TableManager, "changelog_queue"),
    (faust.App, "flow_control"),
    (faust.Table, "apply_changelog_batch"),
    (faust.Table, "on_recovery_completed"),
    (MemoryStore, "data"),
    # recovery_done, owned_partitions, table_rows
    (TableManager, "recovery"),
    (Recovery, "completed"),
    (faust.App, "assignor"),
    (PartitionAssignor, "assigned_actives"),
    (faust.Table, "data"),
]


# --- worker state ---------------------------------------------------------------------------


def recovery_done(app: faust.App) -> bool:
    """Whether the app's tables have been restored from their changelogs (since the last
    assignment): before that they may miss rows, so nothing should act on them."""
    return app.tables.recovery.completed.is_set()


def owned_partitions(app: faust.App) -> set[int]:
    """The partitions (of any topic) assigned to this worker as active, i.e. whose table rows it
    keeps and writes."""
    return {tp.partition for tp in app.assignor.assigned_actives()}


def table_rows(table: faust.Table) -> MutableMapping[str, Any]:
    """The table's in-memory store, keyed as the table is. Setting a row here does not write the
    changelog: workers send their changelog records themselves."""
    return table.data


# --- batched input --------------------------------------------------------------------------


class BatchQueue(Protocol):
    async def get(self) -> list[Message]: ...


class PromptFetchThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with a fetch wait of our choosing (set by fetch_in_batches)."""

    fetch_max_wait_ms: ClassVar[int]

    def _create_worker_consumer(self, transport: Any) -> KafkaClientConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes a fixed 1,500 ms; aiokafka reads this when the consumer starts.
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


class BatchDrainConsumer(FaustKafkaConsumer):
    """Faust's consumer, fetching the input topics' messages into `batches` a list per fetch;
    fetch_in_batches makes a subclass per app with these set.

    Its fetch loop collects what one fetch returned for the input topics, marks each message as
    pending (so a rebalance waits for its ack) and puts the list, in chunks of at most
    `max_batch`, on a queue Faust's flow control clears on a rebalance. The record tables'
    changelog records go to Recovery in runs (`_restore`); anything else takes Faust's usual
    path."""

    input_topics: ClassVar[frozenset[str]]
    batches: ClassVar[Any]  # the app's FlowControlQueue of message lists
    max_batch: ClassVar[int]
    fetch_thread: ClassVar[type[PromptFetchThread]]

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return self.fetch_thread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        fetcher_stopped = fetcher._stopped.is_set
        restored = record_tables_by_changelog(self.app)
        while not (self._stopped.is_set() or fetcher_stopped()):
            batch: list[Message] = []
            runs: dict[TP, list[Message]] = {}
            async for tp, message in self.getmany(timeout=1.0):
                if not await self._in_order(tp, message):
                    continue
                if message.topic in self.input_topics:
                    self.track_message(message)
                    batch.append(message)
                elif message.topic in restored:
                    runs.setdefault(tp, []).append(message)
                else:
                    await self._restore(runs, restored)
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
            await self._restore(runs, restored)
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

    async def _restore(self, runs: dict[TP, list[Message]], restored: dict[str, RecordTable]) -> None:
        """Hand Faust's Recovery each partition's changelog records of this fetch as one
        ChangelogRun, in place of one event per record (Recovery's loop costs ~100 µs a record:
        a restart with a million rows took minutes). What the conductor's path does per message
        is done per run: wait for flow control, decode, put on the changelog queue; a rebalance
        (suspended flow) drops the run, as it drops a message there."""
        changelog_queue = self.app.tables.changelog_queue
        for tp, messages in runs.items():
            run = restored[tp.topic].decode_run(messages)
            await self.wait_first(self._put_run(changelog_queue, run), self.suspend_flow.wait())
        runs.clear()

    async def _put_run(self, changelog_queue: Any, run: ChangelogRun) -> None:
        await self.app.flow_control.acquire()
        await changelog_queue.put(run)

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


def fetch_in_batches(
    app: faust.App, topic: faust.TopicT, *, max_batch: int, fetch_max_wait_s: float
) -> BatchQueue:
    """Subscribe `app` to `topic` through a BatchDrainConsumer: the queue it returns gives what
    each fetch returned for `topic`'s topics, at most `max_batch` messages a list, each pending
    until acked (`app.consumer.ack`). Call before anything uses `app.consumer`."""
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
    return batches


def batch_taken(app: faust.App, batch: Sequence[Message]) -> None:
    """Tell Faust's monitor that the batch's partitions are being processed, as its streams do
    per event. Its consumer checks every partition it fetches for (`verify_event_path`) and logs
    "Stream has not started processing" for one that has records to read and no event taken
    since the worker started: without this, every partition with a backlog, under load."""
    now = monotonic()
    inbound = app.monitor.stream_inbound_time
    for message in batch:
        inbound[message.tp] = now


# --- rebalances -----------------------------------------------------------------------------


def stop_input_until_recovery_resumes(app: faust.App) -> None:
    """Stop the consumer's flow whenever Faust signals an assignment complete, which it does just
    before its Recovery resumes the partitions and seeks them to the committed offsets. Recovery
    resumes the flow itself after that seek, once it has emptied the streams' queues."""

    @app.on_rebalance_complete.connect
    async def _stop_input(sender: Any, **kwargs: Any) -> None:
        app.consumer.stop_flow()


# --- tables ---------------------------------------------------------------------------------


class FaustCodec(codecs.Codec):
    """A Faust codec made of a subclass's `encode` and `decode`."""

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, raw: bytes) -> Any:
        raise NotImplementedError

    def row_key(self, key: str, record: Any) -> str:
        """The text to key a restored row by: `key` as read, or an equal text the record holds
        (one string per customer in memory, not two)."""
        return key

    def row_partition(self, record: Any) -> int | None:
        """The partition a row belongs to (its inputs' and its changelog records'), or None if
        the record cannot say (such a row is never dropped)."""
        return None

    def _dumps(self, value: Any) -> bytes:
        return self.encode(value)

    def _loads(self, raw: bytes) -> Any:
        return self.decode(raw)


class ChangelogRun:
    """A partition's consecutive changelog records from one fetch, decoded, given to Faust's
    Recovery as one event. Recovery reads only `message` (the run's last: its partition and
    offset, to know how far the table is restored) and hands the run to its table's
    `apply_changelog_batch`, which applies every row."""

    __slots__ = ("message", "rows")

    def __init__(self, message: Message, rows: list[tuple[str, Any]]) -> None:
        self.message = message
        self.rows = rows  # (key, record or None for a tombstone), in offset order


class RecordTable(faust.Table):
    """A table whose rows (and changelog records) go through a FaustCodec, restored in runs."""

    def __init__(self, app: faust.App, *, record_codec: FaustCodec, codec_name: str, **kwargs: Any) -> None:
        self.record_codec = record_codec
        self.codec_name = codec_name
        super().__init__(app, **kwargs)

    # Faust derives a table's serializers (and its changelog topic's) from the key and value
    # types while it builds the table; this is the one place to say which codecs to use.
    def _serializer_from_type(self, typ: Any) -> str:
        return "raw" if typ is str else self.codec_name

    def decode_run(self, messages: list[Message]) -> ChangelogRun:
        decode, row_key = self.record_codec.decode, self.record_codec.row_key
        rows: list[tuple[str, Any]] = []
        for message in messages:
            key = message.key.decode()
            if message.value is None:
                rows.append((key, None))
            else:
                record = decode(message.value)
                rows.append((row_key(key, record), record))
        return ChangelogRun(messages[-1], rows)

    def apply_changelog_batch(self, batch: Any) -> None:
        """Apply Recovery's buffered events in order: runs row by row (a tombstone deletes the
        row), Faust's own events as its store does."""
        rows = self.data.data
        singles: list[Any] = []
        for event in batch:
            if not isinstance(event, ChangelogRun):
                singles.append(event)
                continue
            if singles:
                super().apply_changelog_batch(singles)
                singles = []
            for key, record in event.rows:
                if record is None:
                    rows.pop(key, None)
                else:
                    rows[key] = record
        if singles:
            super().apply_changelog_batch(singles)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """Drop the rows of partitions this worker no longer holds actively (standbys' included),
        restored or written live, by the partition each row says it is of; then Faust's own
        completion. Faust's store would drop only restored rows, by a note per row it keeps."""
        held: set[int | None] = {None, *(tp.partition for tp in active_tps)}  # None: kept
        row_partition = self.record_codec.row_partition
        rows = self.data.data
        for key in [key for key, row in rows.items() if row_partition(row) not in held]:
            del rows[key]
        await super().on_recovery_completed(active_tps, standby_tps)


def record_tables_by_changelog(app: faust.App) -> dict[str, RecordTable]:
    """The app's RecordTables by their changelog topic's name."""
    return {
        table.changelog_topic.get_topic_name(): table
        for table in app.tables.values()
        if isinstance(table, RecordTable)
    }


def codec_table(app: faust.App, name: str, codec: FaustCodec, *, partitions: int, help: str) -> faust.Table:
    """Add the table `name` to `app`: keys are raw strings, values (the changelog's too) go
    through `codec`, registered as `<app id>-<name>-record`."""
    codec_name = f"{app.conf.id}-{name}-record"
    codecs.register(codec_name, codec)
    table = RecordTable(
        app,
        record_codec=codec,
        codec_name=codec_name,
        name=name,
        key_type=str,
        partitions=partitions,
        beacon=app.tables.beacon,
        help=help,
    )
    return app.tables.add(table)
