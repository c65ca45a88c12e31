"""The example campaigns shipped as data (example_campaigns.json): the paper's flows."""

from __future__ import annotations

from importlib.resources import files

from pydantic import TypeAdapter

from .definitions import Campaign

_CAMPAIGNS = TypeAdapter(list[Campaign])


def example_campaigns() -> list[Campaign]:
    return _CAMPAIGNS.validate_json(files(__package__).joinpath("example_campaigns.json").read_bytes())
