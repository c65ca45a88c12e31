"""`pd-dlq`: the dead letters from a terminal, over the campaign API (`/v1/dead-letters`).

    pd-dlq list [--topic touchpoint.events.v1] [--last 100]
    pd-dlq show <id>
    pd-dlq replay <id> [<id> ...] [--correct <id>=<file.json> ...]

`--api` (env PD_CAMPAIGN_API, default http://127.0.0.1:8004) and `--token` (env PD_OPS_TOKEN,
default the local stack's) say where and as whom. A replay prints what went back on which topic
and what was refused and why; it exits 1 if anything was refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pd-dlq", description="List, show and replay dead letters.")
    parser.add_argument("--api", default=os.environ.get("PD_CAMPAIGN_API", "http://127.0.0.1:8004"))
    parser.add_argument("--token", default=os.environ.get("PD_OPS_TOKEN", "local-ops-token"))
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the latest dead letters, newest first")
    listing.add_argument("--topic", help="only those of this input topic, e.g. touchpoint.events.v1")
    listing.add_argument("--last", type=int, default=100, help="per dead-letter partition (1-1000)")
    show = commands.add_parser("show", help="one dead letter, whole")
    show.add_argument("id")
    replay = commands.add_parser("replay", help="re-publish dead letters to their topic")
    replay.add_argument("ids", nargs="+")
    replay.add_argument(
        "--correct",
        action="append",
        default=[],
        metavar="ID=FILE",
        help="publish the JSON object in FILE instead of the input as it was (same event_id)",
    )
    return parser.parse_args(argv)


def corrections(pairs: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in pairs:
        letter_id, separator, path = pair.rpartition("=")
        if not separator or not letter_id:
            raise SystemExit(f"--correct takes ID=FILE, not {pair!r}")
        try:
            found[letter_id] = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise SystemExit(f"cannot read the correction {path}: {error}") from None
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    headers = {"Authorization": f"Bearer {args.token}"}
    with httpx.Client(base_url=args.api, headers=headers, timeout=30) as api:
        try:
            if args.command == "list":
                params = {"last": args.last} | ({"topic": args.topic} if args.topic else {})
                answer = api.get("/v1/dead-letters", params=params)
            elif args.command == "show":
                answer = api.get(f"/v1/dead-letters/{args.id}")
            else:
                body = {"ids": args.ids, "corrections": corrections(args.correct)}
                answer = api.post("/v1/dead-letters/replay", json=body)
        except httpx.HTTPError as error:
            raise SystemExit(f"the campaign API at {args.api} did not answer: {error!r}") from None
    if answer.status_code >= 400:
        raise SystemExit(f"{answer.status_code}: {answer.text[:500]}")
    body = answer.json()
    if args.command == "list":
        for letter in body["dead_letters"]:
            replayed = f"  replayed {letter['replayed_at'][:19]}" if letter["replayed_at"] else ""
            print(f"{letter['id']}  {letter['at'][:19]}  {letter['error'][:100]}{replayed}")
        print(f"{len(body['dead_letters'])} dead letter(s)", file=sys.stderr)
        return 0
    print(json.dumps(body, ensure_ascii=False, indent=2))
    return 1 if args.command == "replay" and body["refused"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
