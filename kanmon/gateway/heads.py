"""The lane of a waiting stream: where the store's :class:`~kanmon.store.LaneHead` meets the queue's :class:`Lane`.

The store groups waiting rows by (folder, chat, topic, origin) and knows nothing of lanes; the queue knows lanes and
nothing of rows. The gateway joins them here, in one place, with the queue's own rule (:func:`kanmon.queue.lane_for`).
"""

from __future__ import annotations

from kanmon.queue import Lane, lane_for
from kanmon.store import LaneHead

__all__ = ["lane_of"]


def lane_of(head: LaneHead) -> Lane:
    """The lane ``head``'s next batch runs in: per topic for a ``web:`` chat's named topic, else the folder's."""
    return lane_for(head.folder, head.chat_jid, head.topic)
