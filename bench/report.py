"""What a bench phase measured, and how it is printed: one line per phase, a markdown table at the end."""

from __future__ import annotations

from dataclasses import dataclass

from .wrk import Mode, Result

MODES: tuple[Mode, ...] = ("single", "batch")  # the measured ones; "seed" only prepares


@dataclass(frozen=True)
class Measurement:
    mode: Mode
    target: str  # "ingest" or "bare"
    batch_size: int  # events per request
    connections: int
    result: Result
    server_cpu_pct: float | None  # of one core
    client_cpu_pct: float
    machine_cpu_pct: float  # of all cores together (200 % = both cores busy)


def ratio(ingest: float, bare: float | None) -> str:
    return f"{ingest / bare:.2f}" if bare else "n/a"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} %"


def phase_line(m: Measurement, bare: Measurement | None) -> str:
    r = m.result
    line = f"{r.events_per_s:,.0f} events/s accepted"
    if bare is not None:
        line += f" (ingest/bare = {ratio(r.events_per_s, bare.result.events_per_s)})"
    line += f", p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms"
    if bare is not None:
        line += (
            f" (ingest/bare = {ratio(r.p50_ms, bare.result.p50_ms)}, {ratio(r.p99_ms, bare.result.p99_ms)})"
        )
    line += f"; non-202: {r.non_202}; CPU server {pct(m.server_cpu_pct)}, client {pct(m.client_cpu_pct)}"
    return line + f", machine {pct(m.machine_cpu_pct)}"


def problems(r: Result) -> list[str]:
    """Everything besides plain 202s that a run saw, for the reader to look into."""
    found = [
        f"{n} × HTTP {code}: {r.samples.get(code, '')}"
        for code, n in sorted(r.statuses.items())
        if code != 202
    ]
    found += [f"{n} socket {name} errors" for name, n in r.socket_errors.items() if name != "status" and n]
    if r.duplicates:
        found.append(f"{r.duplicates} events answered as duplicates although every id was fresh")
    if r.rejected_in_202:
        found.append(f"{r.rejected_in_202} events rejected inside 202 batch answers")
    return found


def markdown(measured: list[Measurement], setup: list[str]) -> str:
    """A table fit to paste into a README: each ingest figure next to the bare one, as a ratio."""
    rows = [
        "| mode | figure | ingest | bare FastAPI + aiokafka | ingest/bare |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for mode in MODES:
        ingest = _find(measured, mode, "ingest")
        if ingest is None:
            continue
        bare = _find(measured, mode, "bare")
        rows += _mode_rows(ingest, bare)
    return "\n".join([*rows, "", *setup])


def _find(measured: list[Measurement], mode: Mode, target: str) -> Measurement | None:
    return next((m for m in measured if m.mode == mode and m.target == target), None)


def _mode_rows(ingest: Measurement, bare: Measurement | None) -> list[str]:
    title = f"{ingest.mode} ({ingest.batch_size} event{'s' if ingest.batch_size > 1 else ''}/request)"
    figures: list[tuple[str, float, float | None, str]] = [
        ("accepted events/s", ingest.result.events_per_s, bare and bare.result.events_per_s, "{:,.0f}"),
        ("p50 latency (ms)", ingest.result.p50_ms, bare and bare.result.p50_ms, "{:.1f}"),
        ("p99 latency (ms)", ingest.result.p99_ms, bare and bare.result.p99_ms, "{:.1f}"),
    ]
    rows = []
    for name, mine, theirs, fmt in figures:
        other = "n/a" if theirs is None else fmt.format(theirs)
        rows.append(f"| {title} | {name} | {fmt.format(mine)} | {other} | {ratio(mine, theirs)} |")
    other_non_202 = "n/a" if bare is None else str(bare.result.non_202)
    rows.append(f"| {title} | non-202 responses | {ingest.result.non_202} | {other_non_202} | |")
    cpu_rows = [
        ("server CPU (% of one core)", lambda m: m.server_cpu_pct),
        ("client CPU, wrk (% of one core)", lambda m: m.client_cpu_pct),
        ("machine CPU (% of all cores)", lambda m: m.machine_cpu_pct),
    ]
    for name, get in cpu_rows:
        other = "n/a" if bare is None else pct(get(bare))
        rows.append(f"| {title} | {name} | {pct(get(ingest))} | {other} | |")
    return rows
