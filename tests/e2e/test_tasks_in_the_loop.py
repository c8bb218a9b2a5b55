"""A task's occurrence in a whole gateway (issue 15): through the layers, the impulse gate, the queue and a run of
the echo agent, into the task's topic; counted in /metrics."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from kanmon.router import ImpulseConfig
from kanmon.store import NewTask
from kanmon.web import create_app
from tests.gateway_harness import process_group, running_gateway


async def test_a_due_task_is_answered_in_its_topic_and_counted(tmp_path: Path) -> None:
    # a gate that holds ordinary chatter for ten minutes: a task still fires at once
    patient = ImpulseConfig(threshold=1000, max_hold_ms=600_000)
    async with running_gateway(tmp_path, [process_group("corp")], impulse=patient) as h:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        for prompt, topic in (("/approve web:x corp", "ops"), ("summarise the inbox", "daily")):
            h.store.add_task(
                NewTask(group_folder="corp", chat_jid="web:corp", prompt=prompt, topic=topic, kind="cron",
                        expression="0 0 1 1 *", next_fire_at=now, created_at=now)
            )  # fmt: skip
        h.gateway.scheduler.wake()
        await h.wait_for(lambda: len(h.replies("web:corp")) == 2, "both tasks answered", timeout=30)
        answers = {row.topic: row.content for row in h.outbound("web:corp") if row.run_id is not None}
        # the prompt that reads like a command is the agent's text, not a command kanmon ran
        assert answers == {"ops": "echo: /approve web:x corp", "daily": "echo: summarise the inbox"}
        assert h.store.list_routes() == []
        app = create_app(h.gateway)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kanmon") as client:
            metrics = (await client.get("/metrics")).text
        assert "kanmon_task_fires_total 2.0" in metrics
        assert "kanmon_task_skips_total 0.0" in metrics and "kanmon_task_failures_total 0.0" in metrics
