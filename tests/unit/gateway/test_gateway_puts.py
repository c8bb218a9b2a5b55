"""Gateway.put_message: puts made together (several adapters, a web page) share one transaction, and each caller
still gets its own row, its own refusal, and the order it called in (issue 13: one write transaction per message was
the ingest's whole cost)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event

from kanmon.errors import InvalidInput
from kanmon.gateway import Gateway, GatewayConfig, RunDefaults
from kanmon.store import NewMessage, PutResult, Store, upgrade


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    gateway = Gateway(store, {}, GatewayConfig(run=RunDefaults(instance="t", data_dir=tmp_path)))
    yield gateway
    gateway.db.close()
    store.close()


def message(n: int, chat: str = "web:corp") -> NewMessage:
    return NewMessage(chat_jid=chat, content=f"message {n}", sender="user:1", id=f"m{n}")


def commits(gateway: Gateway) -> list[object]:
    made: list[object] = []
    event.listen(gateway.store.engine, "commit", made.append)
    return made


async def test_puts_made_together_share_transactions_and_keep_the_order_they_were_made_in(gateway: Gateway) -> None:
    made = commits(gateway)
    news = [message(n, chat=f"web:g{n % 3}") for n in range(20)]
    results = await asyncio.gather(*(gateway.put_message(new) for new in news))
    assert [result.message.id for result in results] == [new.id for new in news]
    assert all(result.created for result in results)
    seqs = [result.message.seq for result in results]
    assert seqs == sorted(seqs)
    assert len(made) < len(news)
    assert [row.id for row in gateway.store.new_messages(0)] == [new.id for new in news]


async def test_a_message_put_twice_at_once_is_stored_once(gateway: Gateway) -> None:
    first, again = await asyncio.gather(gateway.put_message(message(1)), gateway.put_message(message(1)))
    assert (first.created, again.created) == (True, False)
    assert again.message == first.message
    assert len(gateway.store.new_messages(0)) == 1


async def test_a_refused_message_among_others_fails_only_its_own_caller(gateway: Gateway) -> None:
    bad = NewMessage(chat_jid="no-colon", content="x", sender="user:1")
    results = await asyncio.gather(
        gateway.put_message(message(1)), gateway.put_message(bad), gateway.put_message(message(2)),
        return_exceptions=True,
    )  # fmt: skip
    assert isinstance(results[1], InvalidInput)
    stored = [result for result in results if isinstance(result, PutResult)]
    assert [result.message.id for result in stored] == ["m1", "m2"]
    assert [row.id for row in gateway.store.new_messages(0)] == ["m1", "m2"]


async def test_a_lone_put_is_one_transaction(gateway: Gateway) -> None:
    made = commits(gateway)
    assert (await gateway.put_message(message(1))).created
    assert len(made) == 1
