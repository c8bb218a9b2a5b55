"""tests/ports.py: ports for child servers come from below the ephemeral range, one block per xdist worker."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests import ports


def test_ports_lie_below_the_ephemeral_range_and_blocks_of_workers_do_not_overlap() -> None:
    low, _ = ports.ephemeral_range()
    blocks = [set(ports.worker_block(f"gw{n}")) for n in range(ports.WORKERS)]
    assert all(max(block) < low for block in blocks)
    assert sum(len(block) for block in blocks) == len(set().union(*blocks)) == ports.WORKERS * ports.BLOCK
    assert ports.worker_block("gw0") == ports.worker_block("master")


def test_handed_out_ports_are_distinct_bindable_and_in_this_workers_block(unused_tcp_port: int) -> None:
    handed = [ports.free_port() for _ in range(50)] + [unused_tcp_port]
    assert len(set(handed)) == len(handed)
    assert set(handed) <= set(ports.worker_block())
    for port in handed[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_someone_holds_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    block = ports.worker_block()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        held = holder.getsockname()[1]
        monkeypatch.setattr(ports, "_turns", iter([held, block[0]]))
        assert not ports.bindable(held)
        assert ports.free_port() == block[0]


def test_an_unreadable_range_file_falls_back_to_linuxs_default(tmp_path: Path) -> None:
    assert ports.ephemeral_range(tmp_path / "missing") == (32_768, 60_999)
    (tmp_path / "range").write_text("40000\t50000\n")
    assert ports.ephemeral_range(tmp_path / "range") == (40_000, 50_000)
