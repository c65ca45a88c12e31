"""`pd-topics`: create every topic the platform uses, with its partitions and retention:
the contract's topics and dead-letter topics, and each worker's own (handovers, ticks, and
compacted changelogs). Idempotent; each worker also creates its own at start."""

from __future__ import annotations

import argparse

from shared.kafka import ensure_topics
from shared.topics import TopicSpec, contract_topics


def all_topics() -> list[TopicSpec]:
    from services.campaign.settings import CampaignSettings
    from services.campaign.topics import worker_owned_topics as campaign_topics
    from services.scoring.settings import ScoringSettings
    from services.scoring.topics import worker_owned_topics as scoring_topics
    from services.tagging.settings import TaggingSettings
    from services.tagging.topics import worker_owned_topics as tagging_topics

    scoring = ScoringSettings()
    specs = contract_topics(scoring.topic_partitions) + scoring_topics(scoring)
    return specs + tagging_topics(TaggingSettings()) + campaign_topics(CampaignSettings())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Create every topic the platform uses (idempotent).")
    parser.parse_args(argv)
    from shared.settings import ServiceSettings

    specs = all_topics()
    settings = ServiceSettings()
    created = ensure_topics(
        settings.kafka_bootstrap_servers, specs, settings.topic_policy, settings.kafka_security
    )
    print(f"{len(specs)} topics ready; created: {created or 'none'}")


if __name__ == "__main__":
    main()
