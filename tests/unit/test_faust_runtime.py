"""shared/faust_runtime.py's fence: the pinned Faust, mode and aiokafka still have every private or
undocumented name it declares in PRIVATE_NAMES, it declares every private name it uses, and no
other module of shared/ or services/ reaches those names."""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import MutableMapping
from importlib.metadata import version
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from faust.serializers import codecs
from faust.transport.consumer import Fetcher

import shared.faust_runtime as runtime
from shared.faust_runtime import PRIVATE_NAMES, VERIFIED_WITH, owned_partitions, recovery_done, table_rows

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = Path(runtime.__file__)
PRIVATE = re.compile(r"^_[A-Za-z0-9]\w*$")  # _name, not __dunder__

# Names in PRIVATE_NAMES too common to fence by name alone outside the runtime module: reaching
# them goes through a fenced name (app.transport.Consumer, app.tables.recovery, ...) anyway.
GENERIC = {"add", "beacon", "callback", "completed", "getmany", "register", "sleep", "tables", "topics"}


def _owner_name(owner: object) -> str:
    return getattr(owner, "__qualname__", None) or getattr(owner, "__name__", repr(owner))


def _samples() -> list[object]:
    """Instances of every class PRIVATE_NAMES names, as plain Faust builds them (none of this
    project's subclasses), for the names they only get in __init__. Built, never started."""

    async def build() -> list[object]:
        app = faust.App("faust-runtime-unit", broker="kafka://127.0.0.1:1", store="memory://")
        table = app.Table("rows", key_type=str)
        kafka_consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        await kafka_consumer.stop()
        return [
            app,
            app.transport,
            app.consumer,
            app.topics,
            app.tables,
            app.tables.recovery,
            app.assignor,
            table,
            table.data,
            Fetcher(app),
            kafka_consumer,
            codecs.Codec(),
        ]

    return asyncio.run(build())


@pytest.fixture(scope="module")
def samples() -> list[object]:
    return _samples()


@pytest.mark.parametrize(
    ("owner", "name"), PRIVATE_NAMES, ids=[f"{_owner_name(o)}.{n}" for o, n in PRIVATE_NAMES]
)
def test_the_pinned_libraries_still_have_the_name(owner: object, name: str, samples: list[object]) -> None:
    if hasattr(owner, name):
        return
    instances = [s for s in samples if isinstance(owner, type) and isinstance(s, owner)]
    assert instances, f"no {_owner_name(owner)} built to look for {name!r} on: add one to _samples"
    missing = [type(s).__qualname__ for s in instances if not hasattr(s, name)]
    assert not missing, f"{_owner_name(owner)} has no {name!r} any more (on {missing})"


def _used_names(tree: ast.AST) -> tuple[set[str], dict[ast.ClassDef, set[str]]]:
    """Attribute names the code reads or writes, and the method names each class defines."""
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    methods = {
        node: {item.name for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)}
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    return attributes, methods


def _library_classes(cls: ast.ClassDef) -> list[type]:
    """The library classes (Faust's, aiokafka's, ...) a class of the runtime module derives from."""
    bases = [eval(ast.unparse(base), vars(runtime)) for base in cls.bases]  # names the module imports
    return [c for base in bases for c in base.__mro__ if not c.__module__.startswith("shared.")]


def test_the_runtime_declares_every_private_name_it_uses_and_uses_every_name_it_declares() -> None:
    attributes, methods = _used_names(ast.parse(RUNTIME.read_text()))
    defined = set().union(*methods.values())
    declared = {name for _, name in PRIVATE_NAMES}
    # A private method of the module's own classes is the module's, unless a library class it
    # derives from has it too: then it is an override (or a collision) and must be declared.
    own = {
        name
        for cls, names in methods.items()
        for name in names
        if PRIVATE.match(name) and not any(hasattr(base, name) for base in _library_classes(cls))
    }
    private_used = {name for name in attributes | defined if PRIVATE.match(name)} - own
    assert private_used <= declared, f"private names used but not in PRIVATE_NAMES: {private_used - declared}"
    unused = declared - attributes - defined
    assert not unused, f"PRIVATE_NAMES lists names the module no longer uses: {unused}"


def _module_files() -> list[Path]:
    files = [*(ROOT / "shared").rglob("*.py"), *(ROOT / "services").rglob("*.py")]
    return sorted(f for f in files if f.resolve() != RUNTIME.resolve())


def _reads_table_data(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Attribute) and node.attr == "data"):
        return False
    owner = node.value
    owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
    return "table" in owner_name.lower()


def test_no_other_module_reaches_faust_internals() -> None:
    fenced = {name for _, name in PRIVATE_NAMES} - GENERIC - {"data"}
    found: list[str] = []
    for path in _module_files():
        relative = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(), filename=relative)
        attributes, methods = _used_names(tree)
        for name in sorted((attributes | set().union(set(), *methods.values())) & fenced):
            found.append(f"{relative}: {name}")
        if any(_reads_table_data(n) for n in ast.walk(tree)):
            found.append(f"{relative}: table.data (use table_rows)")
    assert not found, "Faust/aiokafka internals outside shared/faust_runtime.py:\n" + "\n".join(found)


def test_the_installed_and_pinned_versions_are_the_verified_ones() -> None:
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    )
    for package, verified in VERIFIED_WITH.items():
        hint = f"{package}: rerun the crash tests on the new version, then update VERIFIED_WITH"
        assert pins.get(package, "").split(";")[0].strip() == verified, f"constraints.txt pins another {hint}"
        assert version(package) == verified, f"another {package} is installed; {hint}"


def test_the_helpers_answer_for_an_app_not_started() -> None:
    async def check() -> None:
        app = faust.App("faust-runtime-helpers", broker="kafka://127.0.0.1:1", store="memory://")
        table = app.Table("rows", key_type=str)
        assert recovery_done(app) is False
        assert owned_partitions(app) == set()
        rows = table_rows(table)
        assert isinstance(rows, MutableMapping)
        rows["c1"] = {"n": 1}
        assert table["c1"] == {"n": 1} and rows is table_rows(table)

    asyncio.run(check())


class _TextCodec(runtime.FaustCodec):
    def encode(self, value: object) -> bytes:
        return str(value).encode()

    def decode(self, raw: bytes) -> object:
        return raw.decode()

    def row_partition(self, record: object) -> int | None:
        # rows are "value@partition" here; a row without says nothing
        text = str(record)
        return int(text.rpartition("@")[2]) if "@" in text else None


def _changelog_message(partition: int, offset: int, key: str, value: str | None) -> faust.types.Message:
    return faust.types.Message(
        "rows-changelog",
        partition,
        offset,
        0.0,
        0,
        None,
        key.encode(),
        None if value is None else value.encode(),
        None,
    )


def test_a_record_table_restores_runs_and_single_events_in_order_as_faust_s_store_does() -> None:
    async def check() -> None:
        app = faust.App("faust-runtime-runs", broker="kafka://127.0.0.1:1", store="memory://")
        table = runtime.codec_table(app, "rows", _TextCodec(), partitions=2, help="rows")
        assert runtime.record_tables_by_changelog(app) == {table.changelog_topic.get_topic_name(): table}
        first = table.decode_run(
            [
                _changelog_message(0, 0, "a", "a0@0"),
                _changelog_message(0, 1, "b", "b0@0"),
                _changelog_message(0, 2, "a", None),
            ]
        )
        assert first.message.offset == 2 and first.rows == [("a", "a0@0"), ("b", "b0@0"), ("a", None)]
        # Faust's own event for a record between two runs (as Recovery may buffer one)
        single_message = _changelog_message(1, 0, "c", "c0@1")
        single = app.create_event("c", "c0@1", None, single_message)
        second = table.decode_run([_changelog_message(0, 3, "a", "a1@0")])
        other_partition = table.decode_run([_changelog_message(1, 1, "d", "d0@1")])
        table.apply_changelog_batch([first, single, second, other_partition])
        rows = table_rows(table)
        assert dict(rows.items()) == {"a": "a1@0", "b": "b0@0", "c": "c0@1", "d": "d0@1"}
        rows["e"] = "e0@1"  # written live, as workers write rows
        rows["f"] = "f0"  # a row that cannot say its partition
        # a store losing partition 1 drops every row of it, restored or live, and keeps a row
        # it cannot place
        await table.on_recovery_completed({faust.types.TP("rows-changelog", 0)}, set())
        assert dict(rows.items()) == {"a": "a1@0", "b": "b0@0", "f": "f0"}
        await table.on_recovery_completed(set(), set())
        assert dict(rows.items()) == {"f": "f0"}

    asyncio.run(check())


def test_a_batch_taken_tells_faust_s_monitor_its_partitions_are_processed() -> None:
    # Faust's consumer logs "Stream has not started processing" for a partition with records to
    # read and none in the monitor's record: batches, not streams, take them here.
    app = faust.App("faust-runtime-monitor", broker="kafka://127.0.0.1:1", store="memory://")
    batch = [_changelog_message(2, 0, "a", "a0"), _changelog_message(2, 1, "b", "b0")]
    assert app.monitor.stream_inbound_time == {}
    runtime.batch_taken(app, batch)
    assert list(app.monitor.stream_inbound_time) == [faust.types.TP("rows-changelog", 2)]
