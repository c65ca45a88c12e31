"""The example campaigns shipped as data: the paper's flows, as single actions
(example_campaigns.json) and as journeys of steps (example_journeys.json)."""

from __future__ import annotations

from importlib.resources import files

from pydantic import TypeAdapter

from .definitions import Campaign

_CAMPAIGNS = TypeAdapter(list[Campaign])


def example_campaigns() -> list[Campaign]:
    return _CAMPAIGNS.validate_json(files(__package__).joinpath("example_campaigns.json").read_bytes())


def example_journeys() -> list[Campaign]:
    return _CAMPAIGNS.validate_json(files(__package__).joinpath("example_journeys.json").read_bytes())
