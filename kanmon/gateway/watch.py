"""Following one run from its first event to :class:`~kanmon.container.Exited`, for fresh and reclaimed runs alike.

:func:`watch` reads the handle's events and hands each reply to the run's :class:`~kanmon.gateway.recorder
.ReplyRecorder`; it stops the run once the reply cap is reached, and bounds the whole run, recording included, by the
run's hard timeout plus its stop grace and a little slack: a run whose output cannot be stored fast enough is killed
and ends as a timeout rather than running on (hardening item 9). It stops reading at ``Exited``, before the handle
releases the run's container: a container is removed only once its outcome is recorded. While it follows a run, it
keeps the run's :class:`~kanmon.gateway.typing.TypingSignal` on from the start to the first reply or the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kanmon.clock import Clock
from kanmon.container import ContainerError, Exited, ExitReason, Output
from kanmon.container.events import AttachmentRef
from kanmon.container.handle import RunHandle
from kanmon.gateway.channels import read_from_store
from kanmon.gateway.context import GATEWAY_ORIGIN
from kanmon.gateway.outcome import Ending
from kanmon.gateway.prompt import Batch
from kanmon.gateway.recorder import ReplyRecorder
from kanmon.gateway.typing import TypingSignal, is_status_only
from kanmon.gateway.usage import Reported, note_usage
from kanmon.message_ids import derived_id
from kanmon.store import NewMessage

__all__ = ["Act", "Collect", "Watched", "output_id", "reply", "watch"]

logger = logging.getLogger(__name__)

#: Copies the files an output lists out of a group folder into the media store: ``(folder, refs)`` to the rows'
#: ``attachments`` entries and one line per file refused (:meth:`kanmon.gateway.media.MediaStore.collect_all`).
Collect = Callable[[str, Sequence[AttachmentRef]], Awaitable[tuple[list[dict[str, Any]], list[str]]]]

#: Applies an output's actions (:class:`kanmon.gateway.actions.AgentActions`): ``(batch, run_id, output)`` to the
#: lines for the run log, one per action refused.
Act = Callable[[Batch, str, Output], Awaitable[list[str]]]

#: Seconds past a run's hard timeout and stop grace after which kanmon gives up on it, recording included.
WATCH_SLACK = 30.0


@dataclass(slots=True)
class Watched:
    """What a run produced while it was followed."""

    exited: Exited | None = None
    session_id: str | None = None
    error_block: str | None = None
    capped: bool = False
    problems: list[str] = field(default_factory=list)
    acted: int = 0  # actions its outputs carried
    usage: list[Reported] = field(default_factory=list)  # the outputs that reported usage (kanmon.gateway.usage)

    def ending(self, recorder: ReplyRecorder) -> Ending:
        """The run's :class:`Ending`, for the outcome table."""
        return Ending(
            exited=self.exited,
            produced=recorder.produced,
            error_block=self.error_block,
            capped=recorder.cap if self.capped else None,
            problems=[*self.problems, *recorder.problems],
            acted=self.acted,
        )


def output_id(run_id: str, index: int) -> str:
    """The message id of output ``index`` of run ``run_id`` (unique in any chat)."""
    return derived_id("run-", run_id, index)


def reply(
    batch: Batch,
    run_id: str,
    output: Output,
    attachments: list[dict[str, Any]] | None = None,
    refused: Sequence[str] = (),
) -> NewMessage:
    """The outbound row of one of a run's outputs: into the batch's reply chat and topic, keyed by its index, with
    the files stored for it (``attachments``) and a ``⚠`` line for each file that could not be sent (``refused``)."""
    notes = [f"⚠ not sent: {line}" for line in refused]
    return NewMessage(
        chat_jid=batch.reply_jid,
        id=output_id(run_id, output.index),
        content="\n\n".join(part for part in (output.text, "\n".join(notes)) if part),
        attachments=attachments or None,
        direction="out",
        origin=GATEWAY_ORIGIN,
        topic=batch.reply_topic,
        reply_to_id=batch.reply_to,
        run_id=run_id,
        output_index=output.index,
        delivered=read_from_store(batch.reply_jid),
    )


async def watch(
    handle: RunHandle,
    batch: Batch,
    recorder: ReplyRecorder,
    watched: Watched,
    *,
    clock: Clock,
    collect: Collect | None = None,
    typing: TypingSignal | None = None,
    act: Act | None = None,
) -> bool:
    """Follow ``handle`` to its end into ``watched``; False when the runtime failed us before the run was seen to end.

    A run that outlasts ``timeout + stop_grace + WATCH_SLACK`` since it started (its age from the runtime,
    :meth:`RunHandle.elapsed`, then waited out on ``clock``) is killed and ends as a hard timeout with whatever it
    recorded until then. ``typing`` is told the run started working on the batch's reply chat and topic, and that
    it stopped at its first reply (not only ``⏳`` lines) or however it ended.
    ``act`` applies each output's actions (None: they are refused, one problem line each).
    """
    budget = handle.timeout + handle.stop_grace + WATCH_SLACK - handle.elapsed()

    def replied() -> None:
        if typing is not None:
            typing.stopped(handle.run_id)

    if typing is not None:
        typing.started(handle.run_id, batch.reply_jid, batch.reply_topic)
    following = asyncio.create_task(
        _follow(handle, batch, recorder, watched, collect, replied, act), name=f"kanmon-watch-{handle.run_id}"
    )
    timer = asyncio.create_task(clock.sleep(max(budget, 0.0)))
    try:
        await asyncio.wait([following, timer], return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # gated is stopping: the run is detached, its container left running
        await _cancel(following)
        raise
    finally:
        timer.cancel()
        replied()
    if following.done():
        return following.result()
    await _cancel(following)
    await _overstayed(handle, recorder, watched)
    return True


async def _cancel(task: asyncio.Task[bool]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _follow(
    handle: RunHandle,
    batch: Batch,
    recorder: ReplyRecorder,
    watched: Watched,
    collect: Collect | None,
    replied: Callable[[], None],
    act: Act | None = None,
) -> bool:
    try:
        async with contextlib.aclosing(handle.events()) as events:
            async for event in events:
                if isinstance(event, Output):
                    await _output(handle, batch, recorder, watched, event, collect, act)
                    if event.deliverable and not is_status_only(event.text):
                        replied()
                elif isinstance(event, Exited):
                    watched.exited = event
                    break
    except ContainerError as exc:
        # we no longer know how the run ends, but it may well go on: never run its batch a second time
        logger.error("lost contact with its runtime (%s); it is re-attached when it answers", exc)
        return False
    return True


async def _output(
    handle: RunHandle,
    batch: Batch,
    recorder: ReplyRecorder,
    watched: Watched,
    output: Output,
    collect: Collect | None,
    act: Act | None = None,
) -> None:
    if output.new_session_id:
        watched.session_id = output.new_session_id
    note_usage(handle.run_id, output, watched.usage, watched.session_id)
    if output.status == "error" and not output.deliverable:
        watched.error_block = output.error or "the agent reported an error"
    if output.actions and not watched.capped:
        watched.acted += len(output.actions)
        unapplied = [f"action {output.index}: this gated applies no actions"] * (act is None)
        watched.problems.extend(await act(batch, handle.run_id, output) if act is not None else unapplied)
        if watched.acted >= recorder.cap:  # actions count against runtime.max_replies like replies
            watched.capped = True
            logger.warning("reached %d actions (runtime.max_replies): stopping it", recorder.cap)
            await handle.stop()
    if not output.deliverable or watched.capped:
        return
    files: list[dict[str, Any]] = []
    refused: list[str] = []
    if output.attachments:
        if collect is None:
            refused = [f"attachment {ref.path!r}: this gated keeps no files" for ref in output.attachments]
        else:
            files, refused = await collect(batch.head.folder, output.attachments)
        watched.problems.extend(refused)
    await recorder.add(reply(batch, handle.run_id, output, files, refused))
    if recorder.full:
        watched.capped = True
        logger.warning("reached %d replies (runtime.max_replies): stopping it", recorder.cap)
        await handle.stop()


async def _overstayed(handle: RunHandle, recorder: ReplyRecorder, watched: Watched) -> None:
    logger.error("outlasted its hard timeout with its recording: killing it")
    with contextlib.suppress(ContainerError):
        await handle.kill()
    watched.problems.append("its output could not all be recorded within its hard timeout")
    watched.exited = Exited(
        code=None, reason=ExitReason.HARD_TIMEOUT, outputs=recorder.produced, delivered=recorder.produced
    )
