"""`pd-stack`: run the whole platform on this machine (no Docker). See `pd-stack --help`."""

from __future__ import annotations

import argparse
import logging
import sys

from .layout import Layout


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pd-stack",
        description="The embedded local stack: Tansu broker, Redis and every service, under supervisord. "
        "Config, pids and logs live in .run/.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start everything and wait until every process is ready (idempotent)")
    up.add_argument(
        "--durable",
        action="store_true",
        help="keep the broker's records (in s3rver's files) and Redis's data under .run/durable/ "
        "across restarts and `down` (default: everything in memory)",
    )
    commands.add_parser("down", help="stop everything `up` started")
    commands.add_parser("status", help="each process and whether it is ready (exit 0 only if all are)")
    chaos = commands.add_parser(
        "chaos",
        help="the fault suite on a durable stack: restarts, kills and a stall under load; "
        "prints what was accepted, lost and duplicated per fault",
    )
    chaos.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="FAULT",
        help="leave a fault out (redis-restart, kill-scoring, kill-tagging, kill-campaign, "
        "kill-ingest, broker-stall); may repeat",
    )
    chaos.add_argument(
        "--durable-broker",
        action="store_true",
        help="the broker restart alone, on Tansu keeping its records in moto's S3 server "
        "(installed under .run/tools/ on first use)",
    )
    demo = commands.add_parser("demo", help="`up`, then post realistic customer journeys and summarise")
    demo.add_argument("--customers", type=int, default=300, help="journeys to generate (default 300)")
    demo.add_argument(
        "--seed", type=int, default=7, help="same seed, same events (re-sent ids are duplicates)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    # kafka-python logs every refused connection while the broker starts; our progress says enough.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    layout = Layout.of_repo()
    if args.command == "up":
        from .lifecycle import BrokerStore, up

        sys.exit(up(layout, BrokerStore.FILES if args.durable else BrokerStore.MEMORY))
    if args.command == "down":
        from .lifecycle import down

        sys.exit(down(layout))
    if args.command == "status":
        from .lifecycle import status

        sys.exit(status(layout))
    if args.command == "chaos":
        from .chaos import chaos

        sys.exit(chaos(layout, frozenset(args.without), args.durable_broker))
    from .demo import demo

    sys.exit(demo(layout, customers=args.customers, seed=args.seed))
