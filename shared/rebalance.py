"""Keep a Faust worker from losing input it fetched while an assignment was being finished.

faust-streaming (0.15) finishes every assignment, the first one after a start included, in
`Recovery`: it resumes the input partitions, awaits `consumer.perform_seek()` (back to the
committed offsets) and only then calls `app.flow_control.resume()`, which empties every stream's
queue (their queues are `clear_on_resume`). When a table had a changelog to restore, the fetcher
is already running and the flow is on, so during that seek it hands the streams input records;
those still queued when the flow is resumed are thrown away without an ack. The seek also set the
partitions' read offsets back to the committed ones, so the next record delivered looks like a
jump, and Faust records the whole range as a gap it may commit past. The records are lost: a
few offsets missing on every input partition at once, just after a restart.

`hold_input_until_seeked(app)` stops the consumer's flow when the assignment is complete, which
Faust signals just before it resumes the partitions and seeks. Nothing is fetched into the
streams until Recovery itself resumes the flow, after the seek and after the queues were
emptied; reading then starts at the committed offsets. Call it once, right after creating the
app, in every Faust worker. The Faust hooks it uses are in shared/faust_runtime.py.
"""

from __future__ import annotations

import faust

from shared.faust_runtime import stop_input_until_recovery_resumes


def hold_input_until_seeked(app: faust.App) -> None:
    stop_input_until_recovery_resumes(app)
