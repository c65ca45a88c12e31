"""`pd-stack demo`: bring the stack up, post ~300 customers' journeys through ingest, summarise."""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files

import httpx

from services.campaign.roster_cli import RosterFile, load_roster

from .layout import Layout
from .lifecycle import say, up
from .posting import RetryLater, post_events, progress_printer
from .processes import BOOTSTRAP_SERVERS, CONSOLE, OPS_TOKEN, SERVICES, TOUCHPOINT_KEY
from .simulate import Endpoints, simulate
from .summary import DemoRun, summary
from .traffic import CHINA, flawed_events, in_time_order, journeys


def demo_roster() -> RosterFile:
    """The demo's dealer network: six stores in five cities, twelve consultants."""
    return RosterFile.model_validate_json(files(__package__).joinpath("demo_roster.json").read_bytes())


def demo(layout: Layout, customers: int, seed: int) -> int:
    if (code := up(layout)) != 0:
        return code
    ingest = next(service for service in SERVICES if service.name == "ingest")
    campaign = next(service for service in SERVICES if service.name == "campaign-api")
    try:
        with httpx.Client(base_url=campaign.url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as api:
            examples = api.post("/v1/campaigns/examples").raise_for_status().json()["campaigns"]
            say("\nthe demo's dealer network (stack/demo_roster.json, as pd-roster load would):")
            load_roster(api, demo_roster())
    except (httpx.HTTPError, RuntimeError) as error:
        say(
            f"\nerror: could not add the example campaigns and roster: {error!r} "
            "(log: .run/logs/campaign-api.log)"
        )
        return 1
    say(f"campaigns in force: {', '.join(c['id'] for c in examples)}")
    now = datetime.now(CHINA)
    batch = journeys(customers, seed, now)
    # A few flawed events first, as real touchpoints send now and then: they show rejection.
    events = flawed_events(seed, now) + in_time_order(batch)
    say(f"\ndemo traffic: {len(batch)} customer journeys, {len(events)} events (seed {seed})")
    try:
        with httpx.Client(base_url=ingest.url, headers={"X-Api-Key": TOUCHPOINT_KEY}, timeout=30) as client:
            report = post_events(client, events, progress_printer("  posting"))
    except (httpx.HTTPError, RetryLater, RuntimeError) as error:
        say(f"\nerror: posting failed: {error!r} (ingest's log: .run/logs/ingest.log)")
        return 1
    scoring = next(service for service in SERVICES if service.name == "scoring-api")
    tagging = next(service for service in SERVICES if service.name == "tagging-api")
    run = DemoRun(
        ingest.url, scoring.url, tagging.url, campaign.url, BOOTSTRAP_SERVERS, OPS_TOKEN, batch, report
    )
    run.worker_metrics_urls = [f"{s.url}/metrics" for s in SERVICES if s.name.endswith("-worker")]
    say("")
    say(summary(run))
    say("\nthe paper's funnels, simulated (pd-simulate): generated vs what GET /v1/funnels reports")
    try:
        endpoints = Endpoints(ingest.url, TOUCHPOINT_KEY, tagging.url, OPS_TOKEN)
        simulate(2000, seed, endpoints, layout.root / ".run" / "simulation.json", compare=True, timeout_s=300)
    except (httpx.HTTPError, RetryLater, RuntimeError, TimeoutError) as error:
        say(f"\nerror: the simulation failed: {error!r} (logs: .run/logs/)")
        return 1
    say(f"\nops console: {CONSOLE.url}/   (sign in with the ops token {OPS_TOKEN})")
    say("the stack stays up: make status to check it, make down to stop it")
    return 0
