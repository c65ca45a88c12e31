"""`pd-simulate`: synthetic customers walking the whitepaper's funnels, through ingest, with the
ground truth they were generated from, compared with what the platform reports.

The paths and their probabilities are the Wuling (五菱) Kaijie launch's, as the whitepaper
reports them (docs/domain.md; the seed's page markers):

- **WeCom friends** (source `wecom`, entering with `wecom.friend_added`): 9.72% leave their
  details in the group (社群留资转化率 9.72%, p.23) and 3.15% of all friends order (好友成交转化率
  3.15%, p.23): an order comes only after the details, so 32.4% of friends who left them order.
- **Ad leads** (source `ad`, entering with `ad.lead_form`): a share are lost to a rival
  (`lead.defeated`; `DEFEATED_SHARE`, 40%, our assumption: the paper gives no share); 15% of
  the defeated are recalled (a booked test drive brings them back, 战败线索召回率 15%, p.24) and
  40% of those order (订单转化率 40%, p.24); of the others, as many order as makes every lead's
  lead → deal rate 6.91% (线索成交转化率 6.91%, p.23) over both populations.

Every customer's events go in one request batch, in order. The ground truth — each customer's
path, and the rates as the platform defines them (docs/contract.md, `GET /v1/funnels`) — is
written out; with `--compare` the tool waits until the platform's figures for the run's dealer
stop moving and prints both, with the paper's.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from .posting import post_events, progress_printer

CHINA = timezone(timedelta(hours=8))
FRIEND_LEAD = 0.0972  # p.23
FRIEND_DEAL = 0.0315  # p.23
LEAD_DEAL = 0.0691  # p.23
RECALLED = 0.15  # p.24
RECALLED_ORDER = 0.40  # p.24
DEFEATED_SHARE = 0.40  # assumed: the share of ad leads lost to a rival
FRIEND_SHARE = 0.5  # assumed: half the customers arrive as WeCom friends, half as ad leads

# Rate -> (what the paper reports, its page), for the ones it reports.
PAPER = {
    "friend_to_deal": (3.15, "p.23"),
    "lead_to_deal": (6.91, "p.23"),
    "recall": (15.0, "p.24"),
    "recall_to_order": (40.0, "p.24"),
}


@dataclass(frozen=True)
class Walk:
    """One simulated customer: who they are and what they did, in order."""

    customer_key: str  # their WeCom external user id or lead id: the identifier they are known by
    source: str
    steps: tuple[str, ...]  # event types, in order


def ad_order_share(friend_share: float = FRIEND_SHARE, defeated_share: float = DEFEATED_SHARE) -> float:
    """Of ad leads not defeated, the share who order, so that lead → deal over every lead (friends
    who left details and ad leads) is the paper's 6.91%."""
    friends, ads = friend_share, 1 - friend_share
    wanted = LEAD_DEAL * (FRIEND_LEAD * friends + ads)
    already = FRIEND_DEAL * friends + ads * defeated_share * RECALLED * RECALLED_ORDER
    return (wanted - already) / (ads * (1 - defeated_share))


def paths(customers: int, seed: int) -> list[Walk]:
    """The customers' paths, deterministic for a seed."""
    chance = random.Random(seed)
    ordered_ads = ad_order_share()
    made: list[Walk] = []
    for n in range(customers):
        key = f"sim-{seed}-{n}-{uuid.UUID(int=chance.getrandbits(128)).hex[:8]}"
        if chance.random() < FRIEND_SHARE:
            steps = ["wecom.friend_added"]
            if chance.random() < FRIEND_LEAD:
                steps.append("ad.lead_form")
                if chance.random() < FRIEND_DEAL / FRIEND_LEAD:
                    steps.append("order.placed")
            made.append(Walk(key, "wecom", tuple(steps)))
            continue
        steps = ["ad.lead_form"]
        if chance.random() < DEFEATED_SHARE:
            steps.append("lead.defeated")
            if chance.random() < RECALLED:
                steps.append("test_drive.booked")  # hot again after the defeat: recalled
                if chance.random() < RECALLED_ORDER:
                    steps.append("order.placed")
        elif chance.random() < ordered_ads:
            steps.append("order.placed")
        made.append(Walk(key, "ad", tuple(steps)))
    return made


def ground_truth(simulated: list[Walk]) -> dict[str, float | None]:
    """The rates the paths make, as the platform defines them (docs/contract.md), in percent."""

    def share(part: int, whole: int) -> float | None:
        return round(100.0 * part / whole, 2) if whole else None

    friends = [p for p in simulated if "wecom.friend_added" in p.steps]
    leads = [p for p in simulated if "ad.lead_form" in p.steps]  # every order came after details
    defeated = [p for p in simulated if "lead.defeated" in p.steps]
    recalled = [p for p in defeated if "test_drive.booked" in p.steps]
    return {
        "lead_capture": share(len(leads), len(simulated)),
        "friend_to_deal": share(sum("order.placed" in p.steps for p in friends), len(friends)),
        "lead_to_deal": share(sum("order.placed" in p.steps for p in leads), len(leads)),
        "recall": share(len(recalled), len(defeated)),
        "recall_to_order": share(sum("order.placed" in p.steps for p in recalled), len(recalled)),
    }


def events_of(path: Walk, dealer: str, at: datetime) -> Iterator[dict[str, Any]]:
    """A customer's events in the contract's envelope, a second apart, ending at `at`."""
    identity = "wecom_external_userid" if path.source == "wecom" else "dealer_lead_id"
    # Each run's customers are new (the run's dealer in their ids); the same run sent again is
    # all duplicates.
    who = f"{dealer}-{path.customer_key}"
    for n, kind in enumerate(path.steps):
        properties: dict[str, Any] = {"dealer_id": dealer} if n == 0 else {}
        if kind in ("order.placed", "test_drive.booked"):
            properties["vehicle_model"] = "kaijie"
        if kind == "lead.defeated":
            properties["reason"] = "bought_competitor"
        yield {
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{who}/{n}")),
            "type": kind,
            "source": path.source,
            "occurred_at": (at - timedelta(seconds=len(path.steps) - n)).isoformat(),
            "identities": {identity: who},
            "properties": properties,
            "schema_version": 1,
        }


def post(client: httpx.Client, simulated: list[Walk], dealer: str, rate: float) -> None:
    """Post every customer's events (each customer's in one batch, in order) at about `rate`
    events a second (0: as fast as ingest takes them)."""
    now = datetime.now(UTC)
    events = [e for path in simulated for e in events_of(path, dealer, now)]
    began = time.monotonic()
    show = progress_printer("  posting")
    chunk = 250
    start = 0
    while start < len(events):
        end = min(start + chunk, len(events))
        while end < len(events) and events[end]["identities"] == events[end - 1]["identities"]:
            end += 1  # never split a customer's events between two batches
        report = post_events(client, events[start:end], lambda done, total: None, batch_size=end - start)
        if report.rejected:
            raise RuntimeError(f"ingest refused simulated events: {report.rejected[0].errors}")
        start = end
        show(start, len(events))
        if rate > 0 and (ahead := start / rate - (time.monotonic() - began)) > 0:
            time.sleep(ahead)  # pacing, not synchronisation


def reported(tagging: httpx.Client, dealer: str, day: date) -> dict[str, Any] | None:
    params = {"by": "dealer", "from": str(day - timedelta(days=1)), "to": str(day + timedelta(days=1))}
    answer = tagging.get("/v1/funnels", params=params)
    answer.raise_for_status()
    return next((g for g in answer.json()["groups"] if g["value"] == dealer), None)


def settled(
    tagging: httpx.Client, dealer: str, day: date, customers: int, timeout_s: float
) -> dict[str, Any]:
    """The platform's figures for the dealer once they stop moving (polled every 2 s)."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] | None = None
    steady = 0
    while time.monotonic() < deadline:
        group = reported(tagging, dealer, day)
        entered = group["customers"]["entered"] if group else 0
        steady = steady + 1 if group == last and entered >= 0.97 * customers else 0
        if steady >= 2:
            assert group is not None
            return group
        last = group
        time.sleep(2)
    raise TimeoutError(f"the funnel figures for {dealer} did not settle within {timeout_s:.0f} s: {last}")


def comparison(truth: dict[str, float | None], group: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for rate, generated in truth.items():
        got = group["rates"].get(rate)
        paper = PAPER.get(rate)
        rows.append(
            {
                "rate": rate,
                "paper": f"{paper[0]:.2f}% ({paper[1]})" if paper else "—",
                "generated": generated,
                "reported": got,
                "difference_pp": round(abs(got - generated), 2)
                if got is not None and generated is not None
                else None,
            }
        )
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pd-simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--rate", type=float, default=0, help="events a second (default: as fast as ingest takes)"
    )
    parser.add_argument(
        "--dealer", default=None, help="the store id the customers name (default: one per run)"
    )
    parser.add_argument("--ingest", default="http://127.0.0.1:8001")
    parser.add_argument("--api-key", default="local-touchpoint-key")
    parser.add_argument("--tagging", default="http://127.0.0.1:8003")
    parser.add_argument("--ops-token", default="local-ops-token")
    parser.add_argument("--out", type=Path, default=Path(".run/simulation.json"))
    parser.add_argument("--compare", action="store_true", help="wait for the platform's figures and compare")
    parser.add_argument("--timeout", type=float, default=600)
    return parser


@dataclass(frozen=True)
class Endpoints:
    ingest: str = "http://127.0.0.1:8001"
    api_key: str = "local-touchpoint-key"
    tagging: str = "http://127.0.0.1:8003"
    ops_token: str = "local-ops-token"


def simulate(
    customers: int,
    seed: int,
    endpoints: Endpoints,
    out: Path,
    *,
    rate: float = 0,
    dealer: str | None = None,
    compare: bool = False,
    timeout_s: float = 600,
) -> list[dict[str, Any]]:
    """Generate, post, write the ground truth to `out`; with `compare`, the comparison rows."""
    dealer = dealer or f"d-sim-{seed}-{uuid.uuid4().hex[:6]}"
    simulated = paths(customers, seed)
    truth = ground_truth(simulated)
    day = datetime.now(CHINA).date()
    print(f"simulating {customers} customers (seed {seed}) as dealer {dealer}", flush=True)
    began = time.monotonic()
    with httpx.Client(
        base_url=endpoints.ingest, headers={"X-Api-Key": endpoints.api_key}, timeout=30
    ) as client:
        post(client, simulated, dealer, rate)
    events = sum(len(p.steps) for p in simulated)
    print(f"  posted {events} events in {time.monotonic() - began:.1f} s", flush=True)
    written: dict[str, Any] = {
        "dealer": dealer,
        "seed": seed,
        "cohort_day": str(day),
        "rates": truth,
        "customers": [asdict(p) for p in simulated],
    }
    rows: list[dict[str, Any]] = []
    if compare:
        headers = {"Authorization": f"Bearer {endpoints.ops_token}"}
        with httpx.Client(base_url=endpoints.tagging, headers=headers, timeout=30) as tagging:
            group = settled(tagging, dealer, day, customers, timeout_s)
        written["comparison"] = rows = comparison(truth, group)
        print(f"  {'rate':<16} {'paper':>16} {'generated':>10} {'reported':>10} {'diff (pp)':>10}")
        for row in rows:
            print(
                f"  {row['rate']:<16} {row['paper']:>16} {row['generated']!s:>10} "
                f"{row['reported']!s:>10} {row['difference_pp']!s:>10}"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(written, ensure_ascii=False, indent=1))
    print(f"  ground truth: {out}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    endpoints = Endpoints(args.ingest, args.api_key, args.tagging, args.ops_token)
    simulate(
        args.customers,
        args.seed,
        endpoints,
        args.out,
        rate=args.rate,
        dealer=args.dealer,
        compare=args.compare,
        timeout_s=args.timeout,
    )
    sys.exit(0)
