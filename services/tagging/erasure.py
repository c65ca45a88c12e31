"""PIPL erasure (the right to deletion): customers leave the tagging read model in Redis.

Ingest erases a customer and sends a tombstone down the chain for them and for every customer
merged into them, one person (shared/erasure.py); the tagging worker drops their rows and calls
`erase_customers`, which removes everything the worker and the API wrote about them
(read_model.py):
- their profile `profile:{id}` (a merged-away customer's names their survivor);
- their place in every segment set: `seg:all`, every value's set of layer, orientation, stage,
  band, activity, funnel step (`reached`) and the unscored (`unset`), whatever their profile says,
  and the `seg:tag:{tag}` of every tag their profile holds (interests, RFM, levels, rules' tags);
- a tag name in `tags` that only erased customers had: it may be theirs alone (a defeat reason,
  an interest's topic);
- the merges that name them: their set `merged_away:{id}` and, for a merged-away customer, their
  place in their survivor's.
Customers merged away into an erased customer go with them, to any depth: their snapshots name
the erased id, and they are the same person. What a merged-away customer brought to a survivor
who stays is the survivor's profile now and names nobody else.

The figures stay right without anything to decrement: the ladder, tag counts, the funnel and
segment counts are SCARD/SINTERCARD of those sets at read time, so each loses exactly the erased
customers. Tagging schedules nothing (no due set, shared/ticks.py). Stored segment results
(`query:{digest}:{window}`, kept while paged) lose them too: their names are kept in
`stored_results` (segment_queries.py).

Cheap: the customers' own records say what to remove (the profile its tags and survivor,
`merged_away` who was merged into them), no scan; one script call per ERASURE_CHUNK customers, all
in one pipeline. Atomic: each call is a script (erase_customers.lua), so a count never sees a
customer in half their sets and writes of other customers go on around it. Idempotent: an unknown
or already erased customer removes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from redis.asyncio import Redis

from .read_model import ALL, DIMENSION_SEGMENTS, PREFIX
from .segment_queries import STORED_RESULTS

_ERASE = (Path(__file__).parent / "erase_customers.lua").read_text()
# Customers per script call: a call blocks Redis while it runs (tens of SREMs per customer).
ERASURE_CHUNK = 100
# Every set a customer may be in whatever their profile says: everyone's, and every value's set
# of the dimensions with fixed values (a stale membership a lost write left goes too).
FIXED_SEGMENTS = (ALL, *sorted(DIMENSION_SEGMENTS))


async def erase_customers(redis: Redis, customer_ids: Sequence[str]) -> None:
    """Remove every trace of the customers (and of those merged away into them) that tagging
    keeps in Redis."""
    named = list(dict.fromkeys(customer_ids))
    if not named:
        return
    script = redis.register_script(_ERASE)
    pipe = redis.pipeline(transaction=False)
    for start in range(0, len(named), ERASURE_CHUNK):
        chunk = named[start : start + ERASURE_CHUNK]
        await script(args=[PREFIX, len(FIXED_SEGMENTS), *FIXED_SEGMENTS, *chunk], client=pipe)
    for stored in await redis.zrange(STORED_RESULTS, 0, -1):
        pipe.srem(stored, *named)
    await pipe.execute()
