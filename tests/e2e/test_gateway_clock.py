"""Everything the gateway writes is stamped with its injected clock (issue 13, item 5).

The gateway runs on a clock five years ahead over a store left on the system clock: a row the gateway writes
without handing its time to the store would carry the wall clock's time instead, five years off.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.clocks import ShiftedClock
from tests.gateway_harness import process_group, running_gateway
from tests.store.test_store_clock import AHEAD, stamps


async def test_a_conversation_with_a_command_is_stamped_only_with_the_gateway_clock(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp")], clock=ShiftedClock(AHEAD)) as h:
        await h.send("web:corp", "hello")
        await h.wait_for(lambda: len(h.replies("web:corp")) >= 1, "the first reply")
        await h.send("web:corp", "/new tell me more")  # a reset, its answer, and the text routed on
        await h.wait_for(lambda: any("tell me more" in reply for reply in h.replies("web:corp")), "its reply")
        await h.settled()
        found = stamps(h.store)

    found.pop("registered_groups.added_at")  # the harness registered the group through the store, before the gateway
    lower = dt.datetime.now(dt.UTC) + AHEAD - dt.timedelta(days=1)
    wall = {where: values for where, values in found.items() if any(value < lower for value in values)}
    assert wall == {}, f"stamped with the wall clock: {wall}"
    assert {"messages.received_at", "session_log.started_at", "session_log.ended_at"} <= set(found)
