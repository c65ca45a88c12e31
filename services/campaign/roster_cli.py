"""`pd-roster`: load a dealer network (stores and consultants) from a file into the campaign API,
or show the one in force.

    pd-roster load roster.json [--dry-run]
    pd-roster show

The file is JSON: {"stores": [{"id", "city", "brand", "name"?}, ...],
"consultants": [{"id", "store_id", "daily_capacity"?, "active"?, "name"?}, ...]}. Every entry is
checked before anything is sent (each problem printed with its place in the file; exit 1). Then
stores, then consultants, are PUT one by one (an admin token is needed): loading the same file
again changes nothing but versions; to retire a consultant, load them with "active": false (their
open leads move to colleagues). `--api` (env PD_CAMPAIGN_API) and `--token` (env PD_OPS_TOKEN)
say where and as whom.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .dealers import Consultant, Store


class RosterFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stores: list[Store] = Field(max_length=100_000)
    consultants: list[Consultant] = Field(max_length=1_000_000)

    @model_validator(mode="after")
    def _consistent(self) -> RosterFile:
        for what, ids in (
            ("store", Counter(s.id for s in self.stores)),
            ("consultant", Counter(c.id for c in self.consultants)),
        ):
            if twice := sorted(i for i, n in ids.items() if n > 1):
                raise ValueError(f"{what} ids given twice: {', '.join(twice[:10])}")
        known = {s.id for s in self.stores}
        if unknown := sorted({c.store_id for c in self.consultants} - known):
            raise ValueError(f"consultants of stores not in the file: {', '.join(unknown[:10])}")
        return self


def read_roster(path: Path) -> RosterFile:
    return RosterFile.model_validate_json(path.read_bytes())


def load_roster(api: httpx.Client, roster: RosterFile, progress: bool = True) -> None:
    """PUT every store, then every consultant; raises on the first refusal."""
    items = [
        *((f"/v1/dealers/stores/{s.id}", s.model_dump(mode="json")) for s in roster.stores),
        *((f"/v1/dealers/consultants/{c.id}", c.model_dump(mode="json")) for c in roster.consultants),
    ]
    for number, (path, body) in enumerate(items, start=1):
        response = api.put(path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"PUT {path}: {response.status_code} {response.text[:300]}")
        if progress and (number % 100 == 0 or number == len(items)):
            print(f"\r  {number}/{len(items)} loaded", end="" if number < len(items) else "\n", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pd-roster", description="Load or show the dealer network.")
    parser.add_argument("--api", default=os.environ.get("PD_CAMPAIGN_API", "http://127.0.0.1:8004"))
    parser.add_argument("--token", default=os.environ.get("PD_OPS_TOKEN", "local-ops-token"))
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="PUT a roster file's stores and consultants")
    load.add_argument("file", type=Path)
    load.add_argument("--dry-run", action="store_true", help="check the file only")
    commands.add_parser("show", help="the stores and consultants in force")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    headers = {"Authorization": f"Bearer {args.token}"}
    with httpx.Client(base_url=args.api, headers=headers, timeout=30) as api:
        if args.command == "show":
            stores = api.get("/v1/dealers/stores").raise_for_status().json()["stores"]
            consultants = api.get("/v1/dealers/consultants").raise_for_status().json()["consultants"]
            for store in stores:
                staff = [c for c in consultants if c["store_id"] == store["id"]]
                print(f"{store['id']}  {store['city']}  {store['brand']}  {store.get('name') or ''}")
                for c in staff:
                    state = "" if c["active"] else "  (inactive)"
                    print(f"    {c['id']}  capacity {c['daily_capacity']}/day{state}")
            return 0
        try:
            roster = read_roster(args.file)
        except (OSError, ValidationError, json.JSONDecodeError) as error:
            print(f"pd-roster: {args.file}: {error}", file=sys.stderr)
            return 1
        print(f"{args.file}: {len(roster.stores)} stores, {len(roster.consultants)} consultants")
        if args.dry_run:
            return 0
        try:
            load_roster(api, roster)
        except (httpx.HTTPError, RuntimeError) as error:
            print(f"pd-roster: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
