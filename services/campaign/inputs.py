"""What the campaign worker reads of a touchpoint event: the core fields and the properties."""

from __future__ import annotations

from shared.events import PublishedEvent as CampaignEvent

__all__ = ["CampaignEvent"]
