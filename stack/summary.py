"""The demo's closing summary, as a list of sections.

Each section is a function of the finished run returning its lines; later services add theirs
(scores, tags, campaign stats) as one more function in `SECTIONS`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import httpx

from shared.topics import IDENTITY_MERGES, TOUCHPOINT_EVENTS

from .posting import PostingReport
from .topic_tail import Record, TopicTail
from .traffic import Journey

MERGES_TIMEOUT_S = 20.0  # merges reach their topic through ingest's outbox relay, a moment later

CATCH_UP_TIMEOUT_S = 30.0  # for the workers to take in the demo's traffic


@dataclass
class DemoRun:
    """What one demo run sent and was answered; sections read the rest from the running stack."""

    ingest_url: str
    scoring_url: str
    tagging_url: str
    campaign_url: str
    bootstrap_servers: str
    ops_token: str
    journeys: list[Journey]
    report: PostingReport
    extras: dict[str, object] = field(default_factory=dict)  # for sections to share what they read
    worker_metrics_urls: list[str] = field(default_factory=list)  # the summary waits for them to settle

    def customers_of(self, journey: Journey) -> list[str]:
        """Customer ids ingest answered for the journey's events, in order."""
        return [
            self.report.customer_of[e["event_id"]]
            for e in journey.events
            if e["event_id"] in self.report.customer_of
        ]

    @cached_property
    def merged_in_responses(self) -> set[str]:
        """Customers this run saw merged away: a journey's ids other than its last (the survivor)."""
        merged: set[str] = set()
        for journey in self.journeys:
            if ids := self.customers_of(journey):
                merged |= set(ids) - {ids[-1]}
        return merged


Section = Callable[[DemoRun], list[str]]


def posting_section(run: DemoRun) -> list[str]:
    r = run.report
    rate = r.posted / r.seconds if r.seconds else 0.0
    lines = [
        f"posted {r.posted} events in {r.batches} batches, {r.seconds:.1f}s ({rate:.0f} events/s)",
        f"  accepted {r.accepted} (new {r.new}, duplicates {r.duplicates}), rejected {len(r.rejected)}",
    ]
    for rejected in r.rejected:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in rejected.errors)
        lines.append(f"    rejected {rejected.event.get('type')}: {errors}")
    finals = {ids[-1] for journey in run.journeys if (ids := run.customers_of(journey))}
    lines.append(
        f"  {len(run.journeys)} journeys resolved to {len(finals)} customers; "
        f"{len(run.merged_in_responses)} identity merges seen in this run's answers"
    )
    if r.duplicates and not r.new:
        lines.append(
            "  (every event id was sent before: same seed as an earlier run; try --seed N for new ones)"
        )
    return lines


def topics_section(run: DemoRun) -> list[str]:
    with TopicTail(run.bootstrap_servers, [TOUCHPOINT_EVENTS, IDENTITY_MERGES]) as tail:
        records = tail.read_to_end()
        # Wait (with a deadline) until this run's merges are on their topic too.
        deadline = time.monotonic() + MERGES_TIMEOUT_S
        while run.merged_in_responses - _merged_ids(records) and time.monotonic() < deadline:
            time.sleep(0.1)  # poll interval
            records += tail.read_to_end()
    events = [r for r in records if r.topic == TOUCHPOINT_EVENTS]
    merges = [r for r in records if r.topic == IDENTITY_MERGES]
    run.extras["topic_records"] = records
    return [
        f"on the broker ({run.bootstrap_servers}), read from the beginning:",
        *_events_lines(events, _merged_ids(merges)),
        *_merges_lines(merges, run),
    ]


def _merged_ids(records: list[Record]) -> set[str]:
    return {
        str(r.value["merged_customer_id"])
        for r in records
        if r.topic == IDENTITY_MERGES and r.value and "merged_customer_id" in r.value
    }


def _customer_of(value: dict[str, object]) -> object:
    return value.get("customer_id", value.get("merged_customer_id"))


def _events_lines(events: list[Record], merged: set[str]) -> list[str]:
    values = [r.value for r in events if r.value is not None]
    partitions = Counter(r.partition for r in events)
    # identity.merged (a merge, among the events) is keyed by the customer merged away.
    keyed = sum(1 for r in events if r.value and r.key == str(_customer_of(r.value)).encode())
    by_type = Counter(str(v.get("type")) for v in values).most_common()
    lines = [
        f"  {TOUCHPOINT_EVENTS}: {len(events)} records, partitions "
        + ", ".join(f"p{p}: {n}" for p, n in sorted(partitions.items()))
        + f"; keyed by customer_id: {keyed}/{len(events)}",
    ]
    width = max((len(t) for t, _ in by_type), default=0)
    cells = [f"{t:<{width}} {n:>5}" for t, n in by_type]
    lines += ["    " + "   ".join(cells[i : i + 3]) for i in range(0, len(cells), 3)]
    customers = {str(_customer_of(v)) for v in values}
    lines.append(
        f"    distinct customer_ids: {len(customers)}; once merges are applied: {len(customers - merged)}"
    )
    return lines


def _merges_lines(merges: list[Record], run: DemoRun) -> list[str]:
    values = [r.value for r in merges if r.value is not None]
    merge_ids = {str(v.get("merge_id")) for v in values}
    missing = run.merged_in_responses - _merged_ids(merges)
    lines = [f"  {IDENTITY_MERGES}: {len(merges)} merge records ({len(merge_ids)} distinct merge_ids)"]
    if missing:
        lines.append(
            f"    not on the topic after {MERGES_TIMEOUT_S:.0f}s: {len(missing)} of this run's merges"
        )
    return lines


def lookup_section(run: DemoRun) -> list[str]:
    """One identity lookup through the ops API: the survivor of a merged journey, all its ids."""
    merged = [j for j in run.journeys if len(set(run.customers_of(j))) > 1] or run.journeys
    # Prefer a journey that also left a phone: the lookup then shows every kind of identifier.
    merged = sorted(merged, key=lambda j: not any("phone" in e["identities"] for e in j.events))
    wecom = next(
        (
            e["identities"]["wecom_external_userid"]
            for j in merged
            for e in j.events
            if "wecom_external_userid" in e["identities"]
        ),
        None,
    )
    if wecom is None:
        return []
    path = f"/v1/identities/wecom_external_userid/{wecom}"
    try:
        response = httpx.get(
            run.ingest_url + path, headers={"Authorization": f"Bearer {run.ops_token}"}, timeout=5
        )
    except httpx.HTTPError as error:
        return [f"  lookup GET {path}: {error}"]
    if response.status_code != 200:
        return [f"  lookup GET {path}: {response.status_code}"]
    found = response.json()
    kinds = ", ".join(f"{kind} ×{len(values)}" for kind, values in found["identities"].items())
    return [f"identity lookup: GET {path}", f"  → {found['customer_id']} with {kinds}"]


def scoring_section(run: DemoRun) -> list[str]:
    """The lead concentration matrix and the hottest leads, once the workers have settled."""
    behind = wait_until_settled(run.worker_metrics_urls) if run.worker_metrics_urls else 0.0
    survivors = sorted({ids[-1] for journey in run.journeys if (ids := run.customers_of(journey))})
    headers = {"Authorization": f"Bearer {run.ops_token}"}
    with httpx.Client(base_url=run.scoring_url, headers=headers, timeout=5) as api:
        try:
            unscored = _wait_until_present(api, [f"/v1/customers/{c}/score" for c in survivors])
            matrix = api.get("/v1/matrix").raise_for_status().json()
            hot = api.get("/v1/leads", params={"band": "hot", "limit": 5}).raise_for_status().json()
        except httpx.HTTPError as error:
            return [f"scoring: {error} (logs: .run/logs/scoring-worker.log, scoring-api.log)"]
    lines = [f"lead concentration matrix (GET {run.scoring_url}/v1/matrix), customers per cell:"]
    if behind:
        lines.insert(
            0, f"(the workers were still {behind:,.0f} inputs behind after {CATCH_UP_TIMEOUT_S:.0f}s)"
        )
    activities = matrix["activities"]
    lines.append("  " + f"{'band':<8}" + "".join(f"{a:>12}" for a in activities) + f"{'total':>8}")
    for band in reversed(matrix["bands"]):
        row = matrix["cells"][band]
        lines.append(
            "  " + f"{band:<8}" + "".join(f"{row[a]:>12}" for a in activities) + f"{sum(row.values()):>8}"
        )
    if unscored:
        lines.append(f"  ({unscored} of this run's customers not scored yet after {CATCH_UP_TIMEOUT_S:.0f}s)")
    lines.append("hottest leads (GET /v1/leads?band=hot):")
    width = max((len(lead["customer_id"]) for lead in hot["leads"]), default=0)
    for lead in hot["leads"]:
        model = max(lead["model_interest"].items(), key=lambda m: m[1], default=("-", 0))
        lines.append(
            f"  {lead['customer_id']:<{width}}  intent {lead['intent_pct']:5.1f}%  {lead['activity']:<10}  "
            f"model {model[0]} {model[1]:.0f}%  points {lead['points']}  level {lead['level']}"
        )
    return lines


def tagging_section(run: DemoRun) -> list[str]:
    """The value ladder x orientation matrix and the most common tags, once tagging has caught up."""
    survivors = sorted({ids[-1] for journey in run.journeys if (ids := run.customers_of(journey))})
    headers = {"Authorization": f"Bearer {run.ops_token}"}
    with httpx.Client(base_url=run.tagging_url, headers=headers, timeout=5) as api:
        try:
            untagged = _wait_until_present(api, [f"/v1/customers/{c}/profile" for c in survivors])
            ladder = api.get("/v1/segments/ladder").raise_for_status().json()
            tags = api.get("/v1/tags", params={"limit": 12}).raise_for_status().json()
        except httpx.HTTPError as error:
            return [f"tagging: {error} (logs: .run/logs/tagging-worker.log, tagging-api.log)"]
    lines = [f"value ladder x orientation (GET {run.tagging_url}/v1/segments/ladder), customers per cell:"]
    orientations = ("rational", "emotional", "unknown")
    lines.append("  " + f"{'layer':<10}" + "".join(f"{o:>11}" for o in orientations) + f"{'total':>8}")
    for layer in ("prospect", "intent", "defeated", "owner"):
        row = ladder["cells"][layer]
        lines.append(
            "  " + f"{layer:<10}" + "".join(f"{row[o]:>11}" for o in orientations) + f"{sum(row.values()):>8}"
        )
    if untagged:
        lines.append(
            f"  ({untagged} of this run's customers not profiled yet after {CATCH_UP_TIMEOUT_S:.0f}s)"
        )
    lines.append("most common tags (GET /v1/tags):")
    lines += [f"  {row['tag']:<28} {row['customers']:>6}" for row in tags]
    lines.append(
        f"  count any segment: GET {run.tagging_url}/v1/segments/count?layer=intent&tag=price_sensitive"
    )
    return lines


def _wait_until_present(api: httpx.Client, paths: list[str]) -> int:
    """Poll (with a deadline) until every path answers; return how many still answer 404."""
    waiting = list(paths)
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while waiting and time.monotonic() < deadline:
        waiting = [path for path in waiting if api.get(path).status_code == 404]
        if waiting:
            time.sleep(0.2)  # poll interval
    return len(waiting)


def wait_until_settled(metrics_urls: list[str]) -> float:
    """Poll (with a deadline) until every worker has taken all it was sent: no lag, and nothing
    taken between two polls. Returns the lag left (0 when settled)."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    previous: list[float] | None = None
    lag = 0.0
    while time.monotonic() < deadline:
        try:
            texts = [httpx.get(url, timeout=2).text for url in metrics_urls]
        except httpx.HTTPError:
            return 0.0  # the sections below say what there is
        lines = [line for text in texts for line in text.splitlines()]
        lag = sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("pd_consumer_lag{"))
        taken = [
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("pd_events_processed_total{")
            )
            for text in texts
        ]
        if lag == 0 and taken == previous and all(taken):
            return 0.0
        previous = taken
        time.sleep(1.0)  # poll interval: "nothing taken" must hold for a second
    return lag


def campaign_section(run: DemoRun) -> list[str]:
    """Each campaign's figures: actions by variant, suppressions by reason, conversions vs holdout."""
    headers = {"Authorization": f"Bearer {run.ops_token}"}
    with httpx.Client(base_url=run.campaign_url, headers=headers, timeout=5) as api:
        try:
            campaigns = api.get("/v1/campaigns").raise_for_status().json()["campaigns"]
            stats = {
                c["id"]: api.get(f"/v1/campaigns/{c['id']}/stats").raise_for_status().json()
                for c in campaigns
            }
        except httpx.HTTPError as error:
            return [f"campaigns: {error} (logs: .run/logs/campaign-worker.log, campaign-api.log)"]
    lines = [f"campaigns (GET {run.campaign_url}/v1/campaigns/{{id}}/stats):"]
    for campaign in campaigns:
        figures = stats[campaign["id"]]
        kind = (
            campaign["action"]["kind"]
            if campaign.get("action")
            else f"journey of {len(campaign['steps'])} steps"
        )
        sent = ", ".join(f"{variant} {n}" for variant, n in sorted(figures["sent"].items())) or "none"
        lines.append(f"  {campaign['id']} ({kind}): triggered {figures['triggered']}, sent {sent}")
        if figures["deferred"]:
            lines.append(f"    deferred by quiet hours: {figures['deferred']} (sent when they end)")
        if figures["suppressed"]:
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(figures["suppressed"].items()))
            lines.append(f"    suppressed: {reasons}")
        groups = [
            f"{group} {g['converted']}/{g['entered']}"
            + (f" ({100 * g['conversion_rate']:.0f} %)" if g["conversion_rate"] is not None else "")
            for group, g in figures["groups"].items()
        ]
        if groups:
            lines.append(f"    converted/entered: {', '.join(groups)}")
        if figures.get("delivered") or figures.get("failed"):
            failed = sum(figures["failed"].values())
            lines.append(f"    on WeCom: delivered {figures['delivered']}, failed {failed}")
        if figures.get("steps"):
            reached = ", ".join(f"{s['step']} {s['reached']}" for s in figures["steps"])
            lines.append(f"    reached per step: {reached}")
    lines.append(f"  a customer's actions: GET {run.campaign_url}/v1/customers/{{customer_id}}/actions")
    return lines


SECTIONS: tuple[Section, ...] = (
    posting_section,
    topics_section,
    lookup_section,
    scoring_section,
    tagging_section,
    campaign_section,
)


def summary(run: DemoRun, sections: tuple[Section, ...] = SECTIONS) -> str:
    return "\n".join(line for section in sections for line in section(run))
