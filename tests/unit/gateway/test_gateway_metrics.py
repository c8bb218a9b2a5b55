"""The series issue 18 item 5 adds: bounded folder labels, lag buckets up to the delivery deadline, the delivery
backlog counted on scrape, and no ``_created`` series."""

from __future__ import annotations

from prometheus_client import generate_latest

from kanmon.clock import FakeClock
from kanmon.gateway import GatewayMetrics
from kanmon.gateway.delivery import DeliveryError, DeliveryPolicy, DeliveryWorker, StoreReadChannel
from kanmon.gateway.metrics import OTHER, FolderLabels, lag_buckets
from kanmon.store import Message, NewMessage, Store
from kanmon.store.aio import AsyncStore


class DownChannel:
    """An adapter that refuses every send (transiently)."""

    name: str = "tg"
    prefixes: tuple[str, ...] = ("telegram:",)

    async def send(self, message: Message) -> str | None:
        raise DeliveryError("503 from the adapter")


def reply(store: Store, chat: str, text: str) -> None:
    store.put_message(NewMessage(chat_jid=chat, sender="bot", content=text, direction="out"))


def test_folder_labels_give_the_seeded_busiest_folders_their_names_first_then_other() -> None:
    created: list[str] = []
    labels = FolderLabels(3, on_new=created.append)
    labels.seed(["busy", "busier"])
    assert [labels(f) for f in ("new", "late", "busy", "busier", "later")] == ["new", OTHER, "busy", "busier", OTHER]
    assert created == ["busy", "busier", "new"]


def test_a_folder_gets_a_dead_letter_series_at_zero_when_it_gets_its_label() -> None:
    metrics = GatewayMetrics(max_folders=1)
    metrics.folder("corp")
    metrics.folder("sales")  # past the bound: counted as other, which exists from the start
    sample = metrics.registry.get_sample_value
    assert sample("kanmon_dead_letters_total", {"folder": "corp"}) == 0
    assert sample("kanmon_dead_letters_total", {"folder": OTHER}) == 0
    assert sample("kanmon_dead_letters_total", {"folder": "sales"}) is None


def test_lag_buckets_end_on_the_delivery_deadline() -> None:
    assert lag_buckets(600)[-1] == 600.0 and lag_buckets(600)[-2] == 300
    assert lag_buckets(1.0) == (0.05, 0.1, 0.25, 0.5, 1.0)
    assert lag_buckets(None)[-1] == 43200
    metrics = GatewayMetrics(delivery_deadline=90)
    metrics.delivery_lag_seconds.observe(75)
    assert metrics.registry.get_sample_value("kanmon_delivery_lag_seconds_bucket", {"le": "90.0"}) == 1
    assert metrics.registry.get_sample_value("kanmon_delivery_lag_seconds_bucket", {"le": "60.0"}) == 0


def test_no_created_series_and_the_build_and_process_series_are_there() -> None:
    metrics = GatewayMetrics()
    metrics.runs.labels(result="ok", folder="corp").inc()
    text = generate_latest(metrics.registry).decode()
    assert "_created" not in text
    assert 'kanmon_build_info{python="' in text and "process_cpu_seconds_total" in text and "python_info" in text


async def test_the_backlog_counts_pending_rows_per_channel_backing_off_or_not(store: Store) -> None:
    clock = FakeClock()
    metrics = GatewayMetrics()
    policy = DeliveryPolicy(retry_base=60.0)
    worker = DeliveryWorker(
        AsyncStore(store), [DownChannel(), StoreReadChannel("web", ["web:"])], metrics=metrics, clock=clock,
        policy=policy,
    )  # fmt: skip
    for text in ("one", "two"):
        reply(store, "telegram:1", text)
    reply(store, "matrix:!room", "no adapter for me")
    reply(store, "web:corp", "read from the store")

    assert await worker.count_backlog() == {"tg": 2, "web": 1, "none": 1}
    await worker.deliver_due()  # web: marked sent; telegram: refused, the chat now backs off for a minute
    assert await worker.count_backlog() == {"tg": 2, "web": 0, "none": 1}
    sample = metrics.registry.get_sample_value
    assert sample("kanmon_delivery_backlog", {"channel": "tg"}) == 2
    assert sample("kanmon_delivery_backlog", {"channel": "web"}) == 0
    assert sample("kanmon_delivery_backlog", {"channel": "none"}) == 1
    assert sample("kanmon_deliveries_total", {"channel": "web", "result": "failed"}) == 0  # there, so a rise shows
    assert sample("kanmon_deliveries_total", {"channel": "tg", "result": "pending"}) == 1
