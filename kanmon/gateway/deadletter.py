"""Dead letters (SPEC §8): a batch that failed its last attempt is given up on, with exactly one apology.

Its rows become ``dead``, the chat's cursor passes them, the session is evicted, and the chat is told once: the
apology's id is derived from the batch, so a dead letter repeated after a crash apologises once. A new message to the
chat starts clean.
"""

from __future__ import annotations

from kanmon.gateway.channels import read_from_store
from kanmon.gateway.context import GATEWAY_ORIGIN
from kanmon.gateway.prompt import Batch
from kanmon.message_ids import derived_id
from kanmon.store import NewMessage, RunEnd

__all__ = ["DEAD_LETTER_TEXT", "dead_letter_end"]

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
