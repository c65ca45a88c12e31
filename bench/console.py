"""Console page benchmark (a benchmark, not a test: it prints figures, asserts nothing).

With the local stack holding at least --customers customers (default 100,000), it times every
console page as the server sees it: the `Server-Timing: app;dur=` each console response carries,
which covers the page's ops API calls and its rendering, not the network or the browser. The
goal (issue 14) is every page under 300 ms at 100,000 customers. It prints p50, p95 and the
slowest of --repeat requests per page, and a verdict line per page.

Loading: customers come through the real pipeline: ingest's batch endpoint, then every worker,
so the read models hold what production would. Each customer is the start of a stack/traffic.py
journey (its first --events-per-customer events: an ad click or a WeCom friendship, content,
perhaps a lead form), with every 20th customer given a phone for the lookup. The bench waits
until the workers have taken everything (worker lag 0 and nothing taken for a second). A stack
that already holds enough customers (the lead matrix's total) is measured as it is.

The customer lookup is timed through the console's search (POST /customers/find), which asks
ingest for the identity's owner: one Redis key read however many customers there are (ingest's
identity store keys every identity; nothing scans).

The stack: started with `pd-stack up` when ingest does not answer (and stopped at the end), as
bench/pipeline.py does. Usage (from the repository root):
    .venv/bin/python -m bench.console [--customers 100000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import time
from contextlib import closing
from datetime import datetime
from typing import Any

import httpx

from stack.posting import progress_printer
from stack.processes import CONSOLE, OPS_TOKEN, TOUCHPOINT_KEY
from stack.summary import wait_until_settled
from stack.traffic import CHINA, journey

from .pipeline import INGEST, OTHER_READY, WORKERS, ensure_stack, load_examples, pd_stack, ready, say

GOAL_MS = 300.0
SCORING_API = OTHER_READY["scoring-api"]
BATCH = 500
CONCURRENCY = 4


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000, help="customers the stack should hold")
    parser.add_argument("--events-per-customer", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20, help="requests per page")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--ops-token", default=OPS_TOKEN)
    return parser.parse_args(argv)


def customers_held(token: str) -> int:
    answer = httpx.get(f"{SCORING_API}/v1/matrix", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    answer.raise_for_status()
    return int(answer.json()["total"])


def phone_of(index: int) -> str:
    """The phone the bench gives its customer number `index` (every 20th has one)."""
    return f"+86 139 {index % 10_000:04d} {index // 10_000 % 10_000:04d}"


def make_events(count: int, per_customer: int, seed: int, first: int) -> list[dict[str, Any]]:
    """The first events of `count` new journeys."""
    rng = random.Random(seed)
    now = datetime.now(CHINA)
    events: list[dict[str, Any]] = []
    for index in range(first, first + count):
        steps = journey(rng, index, now).events[:per_customer]
        if index % 20 == 0:  # a phone for the lookup, on the customer's first event
            steps[0]["identities"]["phone"] = phone_of(index)
        events += steps
    return events


async def post_all(events: list[dict[str, Any]]) -> None:
    show = progress_printer("  posting events")
    done = 0
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for start in range(0, len(events), BATCH):
        queue.put_nowait(events[start : start + BATCH])

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal done
        while not queue.empty():
            batch = queue.get_nowait()
            for _ in range(60):
                answer = await client.post("/v1/events/batch", json={"events": batch})
                if answer.status_code != 503:
                    break
                await asyncio.sleep(1)  # ingest's Retry-After: the broker is catching up
            if answer.status_code != 202:
                raise SystemExit(f"ingest answered {answer.status_code}: {answer.text[:300]}")
            done += len(batch)
            show(done, len(events))

    headers = {"X-Api-Key": TOUCHPOINT_KEY}
    async with httpx.AsyncClient(base_url=INGEST, headers=headers, timeout=60) as client:
        await asyncio.gather(*(sender(client) for _ in range(CONCURRENCY)))


def load(args: argparse.Namespace) -> None:
    """Bring the stack to --customers customers."""
    held = customers_held(args.ops_token)
    missing = args.customers - held
    say(f"customers held: {held:,}; goal {args.customers:,}")
    if missing <= 0:
        return
    events = make_events(missing, args.events_per_customer, args.seed + held, held)
    say(f"loading {missing:,} customers: {len(events):,} events through ingest and every worker")
    started = time.monotonic()
    asyncio.run(post_all(events))
    say(f"  posted in {time.monotonic() - started:.0f} s; waiting for the workers to take them in")
    metrics = [f"{url}/metrics" for url in WORKERS.values()]
    while wait_until_settled(metrics) != 0.0:
        say(f"  workers still behind ({time.monotonic() - started:.0f} s)")
    # More customers than journeys: some journeys start with identifiers not linked yet.
    say(f"  loaded in {time.monotonic() - started:.0f} s: {customers_held(args.ops_token):,} customers held")


def signed_in(token: str) -> httpx.Client:
    client = httpx.Client(base_url=CONSOLE.url, timeout=30, headers={"Accept-Language": "zh-CN"})
    form = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf, "the sign-in form has no CSRF field"
    answer = client.post("/login", data={"token": token, "csrf": csrf.group(1), "next": "/"})
    if answer.status_code != 303:
        raise SystemExit(f"could not sign in to the console: {answer.status_code}")
    return client


def server_ms(response: httpx.Response) -> float:
    timing = re.search(r"app;dur=([\d.]+)", response.headers.get("server-timing", ""))
    if timing is None:
        raise SystemExit(f"{response.request.url} has no Server-Timing header")
    return float(timing.group(1))


def measure(client: httpx.Client, label: str, repeat: int, request: Any) -> tuple[str, list[float]]:
    times = []
    for _ in range(repeat):
        response = request(client)
        if response.status_code >= 400:
            raise SystemExit(f"{label}: {response.status_code} {response.text[:200]}")
        times.append(server_ms(response))
    return label, times


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_stack = ensure_stack()
    try:
        if not ready(CONSOLE.url):
            raise SystemExit(f"the console does not answer on {CONSOLE.url}/readyz: `make up` starts it")
        load_examples(args)
        load(args)
        phone = phone_of(0)
        with closing(signed_in(args.ops_token)) as client:
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/customers").text)
            assert csrf
            token = csrf.group(1)
            leads = httpx.get(
                f"{SCORING_API}/v1/leads",
                params={"limit": 1},
                headers={"Authorization": f"Bearer {args.ops_token}"},
            ).json()["leads"]
            customer = leads[0]["customer_id"]
            pages: list[tuple[str, Any]] = [
                ("overview  /", lambda c: c.get("/")),
                ("overview  /api/overview (live refresh)", lambda c: c.get("/api/overview")),
                (f"customer  /customers/{customer[:8]}…", lambda c: c.get(f"/customers/{customer}")),
                ("segments  /segments (everyone)", lambda c: c.get("/segments")),
                (
                    "segments  /segments (intent|prospect, rational, active_7d, not ripple)",
                    lambda c: c.get(
                        "/segments?layer=intent&layer=prospect&orientation=rational"
                        "&activity=active_7d&tags_none=ripple"
                    ),
                ),
                ("campaigns /campaigns", lambda c: c.get("/campaigns")),
                (
                    "campaigns /campaigns/prospect-nurture (stats, estimate)",
                    lambda c: c.get("/campaigns/prospect-nurture"),
                ),
                ("campaigns /campaigns/new", lambda c: c.get("/campaigns/new")),
                ("rules     /tag-rules", lambda c: c.get("/tag-rules")),
                ("plan      /scoring-plan (with calibration)", lambda c: c.get("/scoring-plan")),
                (
                    "lookup    POST /customers/find (customer id)",
                    lambda c: c.post(
                        "/customers/find",
                        data={"csrf": token, "identity_type": "customer_id", "value": customer},
                    ),
                ),
            ]
            known = httpx.post(
                f"{INGEST}/v1/identities/lookup",
                json={"type": "phone", "value": phone},
                headers={"Authorization": f"Bearer {args.ops_token}"},
            )
            if known.status_code != 200:
                say(f"(no customer has the phone {phone}: the stack was loaded otherwise; no phone lookup)")
            else:
                pages.append(
                    (
                        "lookup    POST /customers/find (phone, hashed by ingest)",
                        lambda c: c.post(
                            "/customers/find", data={"csrf": token, "identity_type": "phone", "value": phone}
                        ),
                    )
                )
            held = customers_held(args.ops_token)
            say(
                f"\nconsole page server time with {held:,} customers "
                f"({args.repeat} requests each; goal < {GOAL_MS:.0f} ms)"
            )
            say(f"  {'page':<72} {'p50':>8} {'p95':>8} {'max':>8}")
            worst = 0.0
            for label, times in (measure(client, label, args.repeat, request) for label, request in pages):
                times.sort()
                p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
                worst = max(worst, times[-1])
                flag = "ok" if p95 < GOAL_MS else "OVER"
                say(
                    f"  {label:<72} {statistics.median(times):>6.1f}ms {p95:>6.1f}ms "
                    f"{times[-1]:>6.1f}ms  {flag}"
                )
            say(f"slowest single request: {worst:.1f} ms; ratio to the goal: {worst / GOAL_MS:.2f}")
    finally:
        if started_stack:
            pd_stack("down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
