"""shared/dataclass_replace.py: the same copies as dataclasses.replace."""

from __future__ import annotations

import dataclasses
from dataclasses import InitVar, dataclass, field

import pytest

from services.scoring.batch import CustomerRecord
from services.scoring.intent import CustomerScore
from services.tagging.profile import Profile
from services.tagging.rules import Layer
from shared.dataclass_replace import replace
from shared.ledger import Ledger


@dataclass(frozen=True, slots=True)
class One:
    n: int


@dataclass(frozen=True)
class KeywordOnly:
    a: int
    b: int = field(default=0, kw_only=True)


@dataclass
class WithInitVar:
    a: int
    scale: InitVar[int] = 1

    def __post_init__(self, scale: int) -> None:
        self.a *= scale


@dataclass
class Counted:
    a: int
    seen: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.seen.append(self.a)


@pytest.mark.parametrize(
    ("obj", "changes"),
    [
        (Profile("c-1", interactions=3, first_source="wecom"), {"interactions": 4, "layer": Layer.intent}),
        (Profile("c-1"), {}),
        (CustomerRecord(score=CustomerScore("c-2"), ledger=Ledger({"t/0": 1})), {"emitted_pct": 12.5}),
        (One(1), {"n": 2}),
        (KeywordOnly(1, b=2), {"b": 3}),
        (WithInitVar(2), {"a": 5}),
        (Counted(1), {"a": 2}),
    ],
)
def test_the_copy_is_the_one_dataclasses_replace_makes(obj: object, changes: dict[str, object]) -> None:
    ours, theirs = replace(obj, **changes), dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    assert ours == theirs and type(ours) is type(theirs) and ours is not obj
    assert [getattr(ours, f.name) for f in dataclasses.fields(ours)] == [
        getattr(theirs, f.name) for f in dataclasses.fields(theirs)
    ]


def test_a_copy_stays_frozen_and_an_unknown_field_is_refused() -> None:
    copy = replace(Profile("c-1"), shares=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.shares = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        replace(Profile("c-1"), no_such_field=1)
    with pytest.raises(TypeError):
        replace(object())
