"""Who may send where (kanmon.gateway.actions.send_problem): a root group anywhere a reader is, a child group to its
own chats, its parent's and its children's."""

from __future__ import annotations

import pytest

from kanmon.gateway.actions import send_problem
from tests.unit.gateway.gateway_world import World


@pytest.mark.parametrize("chat", ["web:corp", "web:corp/eng", "telegram:-5", "matrix:!room:hs", "local:corp"])
def test_a_root_group_sends_to_any_chat_someone_reads(world: World, chat: str) -> None:
    assert send_problem(world.ctx(), "corp", chat) is None


@pytest.mark.parametrize("chat", ["web:nosuch", "local:nosuch", "web:corp/nosuch"])
def test_a_root_group_s_send_to_a_web_chat_of_no_group_is_refused(world: World, chat: str) -> None:
    """A newcomer's report: it was recorded 'done, sent to web:nosuch', a row no page ever shows, stored as delivered
    (`gated send web:nosuch` refuses the same chat)."""
    problem = send_problem(world.ctx(), "corp", chat)
    assert problem is not None and "belongs to no group" in problem, problem


def test_a_child_group_sends_only_near_itself(world: World) -> None:
    assert send_problem(world.ctx(), "corp/eng", "web:corp/eng") is None
    assert send_problem(world.ctx(), "corp/eng", "web:corp") is None  # its parent's
    problem = send_problem(world.ctx(), "corp/eng", "web:other")
    assert problem is not None and "not corp/eng, its parent or a child of it" in problem


@pytest.mark.parametrize("chat", ["telegram:", "TeleGram:5", "telegram:4 2", ":x"])
def test_a_malformed_chat_is_refused_before_anything_else(world: World, chat: str) -> None:
    """The JID rule of kanmon's doors (``kanmon.folders.jid_problem``) holds for an agent's send action too."""
    problem = send_problem(world.ctx(), "corp", chat)
    assert problem is not None and problem.startswith("invalid chat JID"), problem
