"""Dead letters (SPEC §8): a batch that failed its last attempt is given up on, with exactly one apology.

Its rows become ``dead``, the chat's cursor passes them, the session is evicted, and the chat is told once: the
apology's id is derived from the batch, so a dead letter repeated after a crash apologises once. A new message to the
chat starts clean.
"""

from __future__ import annotations

import logging

from kanmon.gateway.channels import read_from_store
from kanmon.gateway.context import GATEWAY_ORIGIN
from kanmon.gateway.hooks import Hooks
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.prompt import Batch
from kanmon.logcontext import bound
from kanmon.message_ids import derived_id
from kanmon.store import NewMessage, RunEnd, RunEnded

__all__ = ["DEAD_LETTER_TEXT", "dead_letter_end", "told_dead"]

logger = logging.getLogger("kanmon.gateway.runner")  # the runner's lines, under the runner's name

DEAD_LETTER_TEXT = "Sorry — I couldn't process that. Send it again to retry."


def dead_letter_end(batch: Batch) -> RunEnd:
    """The end of a dead-lettered batch: rows dead, session evicted, one apology to the chat the replies go to."""
    head = batch.head
    apology = NewMessage(
        chat_jid=batch.reply_jid,
        id=derived_id("gw-", "dead", head.chat_jid, batch.rows[0].seq),
        content=DEAD_LETTER_TEXT,
        direction="out",
        origin=GATEWAY_ORIGIN,
        topic=batch.reply_topic,
        reply_to_id=batch.reply_to,
        delivered=read_from_store(batch.reply_jid),
    )
    return RunEnd(
        run_id=None, chat_jid=head.chat_jid, seqs=batch.seqs, rows="dead", run_status="error", folder=head.folder,
        topic=head.topic, evict_session=True, replies=[apology],
    )  # fmt: skip


def told_dead(batch: Batch, ended: RunEnded, metrics: GatewayMetrics, hooks: Hooks) -> None:
    """Say that ``batch`` was dead-lettered (its end recorded as ``ended``): the metric, the ``dead_letter`` hook and
    the log line."""
    head = batch.head
    metrics.dead_letters.labels(folder=metrics.folder(head.folder)).inc()
    hooks.notify("dead_letter", folder=head.folder, chat_jid=head.chat_jid, topic=head.topic, messages=batch.rows)
    with bound(chat=head.chat_jid):  # the lane's ids are bound by the queue already
        logger.error(
            "dead letter seqs=%d..%d (%d rows); cursor now %d",
            batch.rows[0].seq, batch.rows[-1].seq, len(batch.rows), ended.cursor,
        )  # fmt: skip
