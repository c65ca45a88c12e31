"""Post events to ingest's batch endpoint, as a touchpoint would, and tally the answers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

BATCH_SIZE = 250  # ingest takes up to 500; smaller batches make progress visible


class RetryLater(Exception):
    """503: nothing of the batch was acknowledged, so sending it again is safe."""


@dataclass
class Rejected:
    event: dict[str, Any]
    errors: list[dict[str, Any]]


@dataclass
class PostingReport:
    posted: int = 0
    batches: int = 0
    new: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    customer_of: dict[str, str] = field(default_factory=dict)  # event_id -> customer_id answered
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return self.new + self.duplicates


Progress = Callable[[int, int], None]


def post_events(
    client: httpx.Client, events: list[dict[str, Any]], progress: Progress, batch_size: int = BATCH_SIZE
) -> PostingReport:
    """Post `events` in order, batch by batch; `client` carries the base URL and the X-Api-Key."""
    report = PostingReport()
    began = time.monotonic()
    for start in range(0, len(events), batch_size):
        batch = events[start : start + batch_size]
        answer = _post_batch(client, batch)
        for result in answer["results"]:
            report.customer_of[result["event_id"]] = result["customer_id"]
            if result["duplicate"]:
                report.duplicates += 1
            else:
                report.new += 1
        report.rejected += [Rejected(batch[r["index"]], r["errors"]) for r in answer["rejected"]]
        report.posted += len(batch)
        report.batches += 1
        progress(report.posted, len(events))
    report.seconds = time.monotonic() - began
    return report


def _post_batch(client: httpx.Client, batch: list[dict[str, Any]]) -> dict[str, Any]:
    for attempt in Retrying(
        stop=stop_after_delay(60),
        wait=wait_exponential(multiplier=0.2, max=5),
        retry=retry_if_exception_type((RetryLater, httpx.TransportError)),
        reraise=True,
    ):
        with attempt:
            response = client.post("/v1/events/batch", json={"events": batch})
            if response.status_code == 503:
                raise RetryLater(response.text)
            body = (
                response.json()
                if response.headers.get("content-type", "").startswith("application/json")
                else {}
            )
            # 422 with `rejected` means every event of the batch was refused: still an answer.
            if response.status_code not in (202, 422) or "rejected" not in body:
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
            return body
    raise AssertionError("unreachable")


def progress_printer(label: str) -> Progress:
    """One line rewritten in place on a terminal; a line per quarter otherwise (logs, CI)."""
    on_tty = sys.stdout.isatty()
    shown: set[int] = set()

    def show(done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if on_tty:
            print(f"\r{label} {done}/{total} ({percent}%)", end="\n" if done == total else "", flush=True)
        elif percent // 25 not in shown:
            shown.add(percent // 25)
            print(f"{label} {done}/{total} ({percent}%)", flush=True)

    return show
