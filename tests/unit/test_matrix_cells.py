"""A customer's matrix cell as the worker writes it (matrix_cells.py) is their cell in views.matrix."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from services.scoring import views
from services.scoring.intent import Activity, Band
from services.scoring.matrix_cells import ACTIVITIES, BANDS, MatrixBounds, plan_fingerprint
from services.scoring.plan import ScoringPlan, default_plan
from services.scoring.ranking import band_key_range

PLAN = default_plan()
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
ODD = PLAN.model_copy(update={"activity": PLAN.activity.model_copy(update={"active_7d_days": 6.9281})})
UPSIDE_DOWN = PLAN.model_copy(
    update={"activity": PLAN.activity.model_copy(update={"active_7d_days": 20.5, "active_30d_days": 9.25})}
)


def cell_in_views(key: float, last: float, plan: ScoringPlan, now: datetime) -> tuple[Band, Activity]:
    cells = views.matrix({"c": (key, None if last == -math.inf else last)}, plan, now)
    (cell,) = [(b, a) for b, row in cells.items() for a, n in row.items() if n]
    return cell


def edges(plan: ScoringPlan, now: datetime) -> list[tuple[float, float]]:
    """Keys on and an ulp below every floor, last interactions on and an ulp before every window."""
    floors = [band_key_range(b, plan, now)[0] for b in (Band.medium, Band.high, Band.hot)]
    windows = [
        views.active_since(d, now) for d in (plan.activity.active_7d_days, plan.activity.active_30d_days)
    ]
    keys = [k for f in floors for k in (f, math.nextafter(f, -math.inf))] + [-math.inf]
    lasts = [x for w in windows for x in (w, math.nextafter(w, -math.inf))] + [-math.inf, now.timestamp()]
    return [(k, x) for k in keys for x in lasts]


def test_every_edge_and_random_customers_fall_where_views_matrix_puts_them() -> None:
    rng = random.Random(5)
    for plan in (PLAN, ODD, UPSIDE_DOWN):
        for now in (NOW, NOW + timedelta(days=9, seconds=7.25)):
            bounds = MatrixBounds.at(plan, now)
            randoms = [
                (rng.uniform(-5, 30), now.timestamp() - rng.uniform(0, 60 * 86_400)) for _ in range(500)
            ]
            for key, last in edges(plan, now) + randoms:
                fingerprint, indices = bounds.cell(key, last).split(":")
                band, activity = BANDS[int(indices[0])], ACTIVITIES[int(indices[1])]
                assert fingerprint == plan_fingerprint(plan)
                assert (band, activity) == cell_in_views(key, last, plan, now), (plan, now, key, last)


def test_the_fingerprint_names_what_moves_cells_and_nothing_else() -> None:
    same = ScoringPlan.model_validate_json(PLAN.model_dump_json())  # ints read back as floats
    assert plan_fingerprint(same) == plan_fingerprint(PLAN)
    reweighted = PLAN.model_copy(update={"weights": PLAN.weights | {"content.view": 99.0}})
    assert plan_fingerprint(reweighted) == plan_fingerprint(PLAN)
    assert len({plan_fingerprint(p) for p in (PLAN, ODD, UPSIDE_DOWN)}) == 3
    slower = PLAN.model_copy(update={"half_life_days": PLAN.half_life_days * 2})
    assert plan_fingerprint(slower) != plan_fingerprint(PLAN)
