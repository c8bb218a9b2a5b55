"""What gated makes of an adapter's answers that are neither "taken" nor "no": ``Retry-After``, and redirects.

* A 429 or 503 with ``Retry-After`` (seconds, or an HTTP date) was tried again 0.2 s later (the quick tries) and then
  after the usual backoff (1 s, doubling): a platform's flood control that asked for two minutes got a dozen requests
  meanwhile. The next attempt at that chat now comes no earlier than the answer asked (at most the policy's
  ``max_backoff``, never past the deadline), and nothing is sent again within the attempt.
* A redirect (307/308 to an adapter's new address, a 304) failed the reply at once, as a refusal: a moved adapter lost
  every reply. Redirects are still not followed (a POST carrying the channel secret does not go to another host), but
  they are a transient failure naming the ``Location``, so an operator fixes the URL and nothing is lost.

Each adapter here is a real HTTP server; the worker's clock is a test's clock, moved by the test, never slept on.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kanmon.gateway import GatewayMetrics
from kanmon.gateway.adapters import AdapterDeliveryConfig, adapter_deliverer
from kanmon.gateway.delivery import DeliveryWorker
from kanmon.store import Channel, Message, NewMessage, Store
from kanmon.store.aio import AsyncStore
from tests.clocks import ShiftedClock
from tests.http_serving import serving

SECRET = "channel-secret-of-this-test"
START = dt.datetime(2031, 3, 4, 5, 6, 7, tzinfo=dt.UTC)  # the test clock's time: far from the machine's
CONFIG = AdapterDeliveryConfig(channel_secret=SECRET, retry_base=1.0, deadline=3600.0, quick_tries=3, quick_wait=0.01)
SLACK = dt.timedelta(seconds=5)  # the clock runs on (for real) while a test works


@dataclass
class Adapter:
    """An adapter that answers each ``/send`` with the next of ``answers`` (then 200), counting the requests."""

    answers: list[Response] = field(default_factory=list)
    requests: int = 0

    def app(self) -> Starlette:
        async def send(request: Request) -> Response:
            await request.body()
            self.requests += 1
            return self.answers.pop(0) if self.answers else JSONResponse({"ok": True, "id": "p-1"})

        return Starlette(routes=[Route("/send", send, methods=["POST"])])


@dataclass
class Setup:
    adapter: Adapter
    worker: DeliveryWorker
    clock: ShiftedClock
    store: Store

    def reply(self, text: str = "hello") -> Message:
        return self.store.put_message(
            NewMessage(chat_jid="telegram:1", content=text, direction="out"), now=self.now
        ).message

    @property
    def now(self) -> dt.datetime:
        return self.clock.now()

    def row(self, message: Message) -> Message:
        row = self.store.get_message(message.chat_jid, message.id)
        assert row is not None
        return row


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock.starting_at(START)


@pytest.fixture
async def setup(store: Store, clock: ShiftedClock) -> AsyncIterator[Setup]:
    adapter = Adapter()
    async with serving(adapter.app()) as url, httpx.AsyncClient() as client:
        channel = Channel(
            name="tg", url=url, token_hash="h", jid_prefixes=["telegram:"], capabilities={}, registered_at=START
        )
        deliverer = adapter_deliverer(channel, client, CONFIG, instance="k1", clock=clock)
        policy = CONFIG.policy()
        worker = DeliveryWorker(AsyncStore(store), [deliverer], metrics=GatewayMetrics(), clock=clock, policy=policy)
        yield Setup(adapter, worker, clock, store)


def http_date(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)


# ------------------------------------------------------------------------------------------------ Retry-After
@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_in_seconds_holds_the_next_attempt_back_that_long(setup: Setup, status: int) -> None:
    setup.adapter.answers = [JSONResponse({"error": "flood"}, status_code=status, headers={"Retry-After": "120"})]
    sent = setup.reply()
    asked = setup.now

    assert await setup.worker.deliver_due() == 0
    row = setup.row(sent)
    assert (row.delivery_status, row.delivery_attempts) == ("pending", 1)
    assert setup.adapter.requests == 1  # no quick try against the answer's wish
    assert row.deliver_after is not None
    assert asked + dt.timedelta(seconds=120) <= row.deliver_after <= asked + dt.timedelta(seconds=120) + SLACK
    assert f"answered {status}" in (row.delivery_error or "")

    setup.clock.advance(100)  # past the policy's own backoff (1 s), not past what the adapter asked for
    assert await setup.worker.deliver_due() == 0
    assert setup.adapter.requests == 1

    setup.clock.advance(25)
    assert await setup.worker.deliver_due() == 1
    assert setup.row(sent).delivery_status == "sent" and setup.adapter.requests == 2


async def test_retry_after_as_an_http_date_is_read_against_the_injected_clock(setup: Setup) -> None:
    until = START + dt.timedelta(minutes=5)
    setup.adapter.answers = [Response(status_code=503, headers={"Retry-After": http_date(until)})]
    sent = setup.reply()

    assert await setup.worker.deliver_due() == 0
    row = setup.row(sent)
    assert row.deliver_after is not None and until - SLACK <= row.deliver_after <= until + SLACK
    assert setup.adapter.requests == 1

    setup.clock.advance(240)
    assert await setup.worker.deliver_due() == 0 and setup.adapter.requests == 1
    setup.clock.advance(70)
    assert await setup.worker.deliver_due() == 1


async def test_a_retry_after_beyond_the_policys_max_backoff_is_capped_by_it(setup: Setup) -> None:
    setup.adapter.answers = [Response(status_code=429, headers={"Retry-After": str(7 * 24 * 3600)})]
    sent = setup.reply()
    asked = setup.now

    assert await setup.worker.deliver_due() == 0
    cap = dt.timedelta(seconds=CONFIG.policy().max_backoff)
    row = setup.row(sent)
    assert row.deliver_after is not None and asked + cap <= row.deliver_after <= asked + cap + SLACK


async def test_a_retry_after_never_carries_a_reply_past_its_deadline(setup: Setup) -> None:
    setup.adapter.answers = [Response(status_code=429, headers={"Retry-After": "600"})]
    stored = setup.now - dt.timedelta(seconds=CONFIG.deadline - 300)  # five minutes of its deadline left
    sent = setup.store.put_message(NewMessage(chat_jid="telegram:1", content="late", direction="out"), now=stored)

    assert await setup.worker.deliver_due() == 0
    row = setup.row(sent.message)
    assert row.delivery_status == "pending"
    assert row.deliver_after == stored + dt.timedelta(seconds=CONFIG.deadline)  # one last try at the deadline


async def test_a_retry_after_that_cannot_be_read_is_ignored(setup: Setup) -> None:
    setup.adapter.answers = [Response(status_code=429, headers={"Retry-After": value}) for value in ("soon", "-5")]
    sent = setup.reply()

    assert await setup.worker.deliver_due() == 1  # the quick tries go on: the third is taken
    assert setup.adapter.requests == 3
    assert setup.row(sent).delivery_status == "sent"


# ------------------------------------------------------------------------------------------------ redirects
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed_and_is_tried_again_naming_where_it_pointed(
    setup: Setup, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = Adapter()  # where the redirect points: a real server, which must never be asked
    async with serving(elsewhere.app()) as url:
        moved = url.replace("http://", "http://ops:hunter2@") + "/send"
        setup.adapter.answers = [Response(status_code=status, headers={"Location": moved})]
        sent = setup.reply()
        with caplog.at_level(logging.WARNING, logger="kanmon.gateway.delivery"):
            assert await setup.worker.deliver_due() == 0
    assert elsewhere.requests == 0
    row = setup.row(sent)
    assert (row.delivery_status, row.delivery_attempts) == ("pending", 1)  # not refused: nothing is lost
    assert setup.adapter.requests == 1  # not followed, and not asked again within the attempt
    assert f"{url}/send" in (row.delivery_error or "")
    assert "not followed" in (row.delivery_error or "") and "hunter2" not in (row.delivery_error or "")
    [line] = [r.getMessage() for r in caplog.records if r.name == "kanmon.gateway.delivery"]
    assert f"{url}/send" in line and f"{status}" in line and "hunter2" not in line

    setup.clock.advance(60)
    assert await setup.worker.deliver_due() == 1  # the operator fixed it (here: the adapter answers again)
    assert setup.row(sent).delivery_status == "sent"


async def test_a_304_is_a_transient_failure_too(setup: Setup) -> None:
    setup.adapter.answers = [Response(status_code=304)]
    sent = setup.reply()
    assert await setup.worker.deliver_due() == 0
    row = setup.row(sent)
    assert row.delivery_status == "pending" and "304" in (row.delivery_error or "")


@pytest.fixture(autouse=True)
def _no_leftover_answers(setup: Setup) -> Iterator[None]:
    yield
    assert setup.adapter.answers == []  # every answer a test set up was given
