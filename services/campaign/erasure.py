"""Erasure (PIPL's right to deletion) of customers from the campaign service's Redis state.

A customer asked to be forgotten: nothing the campaign worker, its timers or its API wrote to
Redis may name them afterwards, by their customer id or by the ids of the actions decided for them
(derived from the customer id: they would link the figures back to the person). Erased:
- their actions and suppressions (`customer:{id}:actions`) and their consents
  (`customer:{id}:consent`), deleted;
- their next due time (`due`): the ticker sends them no more ticks;
- their leads at the dealer desk (`leads`, `leads:pool`, `leads:open`, `leads:released`, the
  holding consultant's `leads:consultant:{id}`, `leads:customer:{id}`), closed as a follow-up
  closes them (desk.close_leads), so the lead counts and each consultant's open leads are right
  at once, and no pool release hands an erased customer's lead on; with the `assignments` of
  their actions (action id -> consultant);
- their members of the figures kept as sets: their customer id in every campaign's (and the
  programme's) `entered:{group}` and `converted:{group}` (the variants, the holdout, the global
  control group: lift), their action ids in `triggered`, `sent:{group}`, `deferred`,
  `suppressed:{reason}` and in each day's figures (`daily:{date}:...`).
Chosen for the figures: they keep their counts, as a number is not personal data. A set's size
is its figure, so each member is replaced in its set by an anonymous stand-in (`erased:` and a
hash of a salt drawn for the erasure and never kept, the set's key and the member): campaign
stats, lift and the days' actions read the same before and after, and no member names anyone,
nor links the stand-ins of one customer together. Plain counters keep their numbers too: SLA
misses and handovers per consultant, and each consultant's load of the day (`desk`: leads
received today against their daily capacity, which a follow-up does not give back either).
Nothing else the service writes names a customer: the definitions, the roster, the audit trail
(ops' documents and holders) and the replayed dead letters' marks (`dlq:replayed`, by topic place)
do not.

Cheap: the customers' own actions say which action ids to take out and which days to look at;
campaigns are few, so every campaign ever defined (the definitions' item versions outlive a
delete) and the programme are looked at, through each one's index of figures; no key is scanned.
Three pipelined round trips per call (and the check that the scripts are loaded), whatever the
number of customers: read the actions and the campaign
ids; close the leads and replace the members (two Lua scripts, atomic against the workers'
writes of other customers); then delete the customers' own keys — last, so that an erasure cut
short is done by running it again, the actions still saying what to take out. Idempotent: an
erased or unknown customer has nothing left to find.

Not against writes for the customer themself: call it once nothing more comes for them (the
worker, after their erasure tombstone; shared/erasure.py keeps later inputs out).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from importlib.resources import files

from redis.asyncio import Redis

from shared.channels import consent_key

from . import desk
from .daily import RETENTION, china_date, day_key
from .journey import PROGRAMME
from .read_model import DUE, ActionRecord, actions_key, stats_key
from .store import CAMPAIGNS

_ERASE_LEADS = files(__package__).joinpath("erase_leads.lua").read_text()
_ERASE_FIGURES = files(__package__).joinpath("erase_figures.lua").read_text()
# A day's figures may hold an action whose latest record is of a later day (a message deferred by
# quiet hours, a lead waiting in the pool): the record's day and the days before it whose keys
# may still live (a day's keys expire RETENTION after it).
_DAYS_BACK = (RETENTION + dt.timedelta(days=1)).days
_ALL_FIGURES = ""


async def erase_customers(redis: Redis, customer_ids: Sequence[str]) -> None:
    """Remove every trace of these customers from the campaign service's Redis state (see the
    module's docstring for what goes and what stays). Idempotent; unknown ids are no-ops."""
    customers = list(dict.fromkeys(customer_ids))
    if not customers:
        return
    records, campaigns = await _traces(redis, customers)
    action_ids = sorted({record.action_id for record in records})

    pipe = redis.pipeline(transaction=False)
    await redis.register_script(_ERASE_LEADS)(
        keys=[
            desk.LEADS,
            desk.POOL,
            desk.OPEN,
            desk.RELEASED,
            desk.ASSIGNMENTS,
            *(desk.customer_key(c) for c in customers),
        ],
        args=[desk.consultant_key(""), *action_ids],
        client=pipe,
    )
    erase_figures = redis.register_script(_ERASE_FIGURES)
    salt = secrets.token_hex(16)  # the stand-ins' (erase_figures.lua): drawn here, kept nowhere
    indexes = [stats_key(campaign, "figures") for campaign in sorted(campaigns)]
    await erase_figures(
        keys=indexes,
        args=[
            *(stats_key(campaign, "") for campaign in sorted(campaigns)),
            1,
            _ALL_FIGURES,
            salt,
            *customers,
            *action_ids,
        ],
        client=pipe,
    )
    if action_ids:
        days = sorted(_days_of(records))
        acting = sorted({record.campaign_id for record in records})
        await erase_figures(
            keys=[day_key(day) for day in days],
            args=[
                *(f"{day_key(day)}:" for day in days),  # + `{campaign}:{figure}`: the figure's key
                len(acting),
                *(f"{campaign}:" for campaign in acting),
                salt,
                *action_ids,
            ],
            client=pipe,
        )
    await pipe.execute()

    pipe = redis.pipeline(transaction=False)
    pipe.delete(*(actions_key(c) for c in customers), *(consent_key(c) for c in customers))
    pipe.zrem(DUE, *customers)
    await pipe.execute()


async def _traces(redis: Redis, customers: list[str]) -> tuple[list[ActionRecord], set[str]]:
    """The customers' action records, and every campaign whose figures may count them."""
    pipe = redis.pipeline(transaction=False)
    for customer_id in customers:
        pipe.hvals(actions_key(customer_id))
    pipe.hkeys(CAMPAIGNS.key)
    pipe.hkeys(CAMPAIGNS.item_versions_key)
    *actions, defined, ever_defined = await pipe.execute()
    records = [ActionRecord.model_validate_json(raw) for raws in actions for raw in raws]
    campaigns = {
        PROGRAMME,
        *(c.decode() for c in (*defined, *ever_defined)),
        *(r.campaign_id for r in records),
    }
    return records, campaigns


def _days_of(records: Iterable[ActionRecord]) -> set[dt.date]:
    """The China days whose figures may hold these actions."""
    days: set[dt.date] = set()
    for record in records:
        last = china_date(record.at)
        days.update(last - dt.timedelta(days=back) for back in range(_DAYS_BACK + 1))
    return days
