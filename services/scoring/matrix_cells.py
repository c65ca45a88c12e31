"""The lead concentration matrix kept as counts: what a customer's cell is, as of a moment.

Counting the matrix at read time (lead_matrix.py, `scan`) lists every customer outside the
largest band and activity: ~200 ms at a million customers. So the worker writes, with each
customer's score, their cell (`MatrixBounds.cell`): `<plan fingerprint>:<band><activity>`, and
Redis keeps how many customers each cell holds (read_model.py, keys `cell` and `cells`; a move
that changes nothing counts nothing, so a replay changes no count). The fingerprint names what
of the plan a cell depends on: after a plan change, cells of the old plan are not counted as the
new plan's, and the worker rewrites its customers' cells (agents.refresh_plan).

Time alone moves customers between cells (decay, activity windows). The moment it next does is
the customer's due time (intent.next_change_at, the `due` sorted set), when a tick makes the
worker write them again. The reader corrects the counts for the customers due by now and not
yet written again (lead_matrix.py), so the counts are the matrix at now, not at the last write.

Pure: no Redis here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import orjson

from .intent import Activity, Band
from .plan import ScoringPlan
from .ranking import band_key_range
from .views import active_since

BANDS = (Band.low, Band.medium, Band.high, Band.hot)
ACTIVITIES = (Activity.active_7d, Activity.active_30d, Activity.dormant)


def plan_fingerprint(plan: ScoringPlan) -> str:
    """What of the plan decides a customer's cell (bands, their scale, decay, activity windows)."""
    bands, windows = plan.bands, plan.activity
    # As floats: a default may be an int where the same plan read back from JSON has a float.
    parts = [
        plan.half_life_days,
        plan.pct_scale,
        bands.medium,
        bands.high,
        bands.hot,
        windows.active_7d_days,
        windows.active_30d_days,
    ]
    return hashlib.sha1(orjson.dumps([float(part) for part in parts])).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class MatrixBounds:
    """The cells' edges at one moment: the rank-key floors of medium, high and hot, and the
    earliest last interaction of active_7d, then of active_30d. Where a customer falls is decided
    by comparing with these, in Python and in Lua alike, so both agree to the bit (and with
    views.matrix, whose edges these are)."""

    fingerprint: str
    floors: tuple[float, float, float]
    windows: tuple[float, float]

    @classmethod
    def at(cls, plan: ScoringPlan, now: datetime) -> MatrixBounds:
        medium, high, hot = (band_key_range(b, plan, now)[0] for b in (Band.medium, Band.high, Band.hot))
        windows = plan.activity
        week, month = (active_since(days, now) for days in (windows.active_7d_days, windows.active_30d_days))
        # A plan may make the 30-day window the shorter one: then nobody is active_30d, and
        # dormant must start where active_7d ends.
        return cls(plan_fingerprint(plan), (medium, high, hot), (week, min(month, week)))

    def cell(self, rank_key: float, last_interaction_s: float) -> str:
        """The customer's cell, `<fingerprint>:<band><activity>` (never interacted: -inf)."""
        medium, high, hot = self.floors
        band = 3 if rank_key >= hot else 2 if rank_key >= high else 1 if rank_key >= medium else 0
        week, month = self.windows
        activity = 0 if last_interaction_s >= week else 1 if last_interaction_s >= month else 2
        return f"{self.fingerprint}:{band}{activity}"

    def arguments(self) -> list[str]:
        # repr: the shortest text that parses back to the same double, so Redis compares exactly
        # what Python compares.
        return [repr(bound) for bound in (*self.floors, *self.windows)]
