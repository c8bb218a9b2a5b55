"""Which usage a run is charged with (issue 16 item 4 with issue 19): the agent's own report, else the proxy's count."""

from __future__ import annotations

from kanmon.container.events import Usage
from kanmon.gateway.proxy_usage import TokenCounts
from kanmon.gateway.run_tokens import RunTokens
from kanmon.gateway.upstreams import CredentialGrants
from kanmon.gateway.usage import PROXY_INDEX, Reported, run_usage

OWN = [Reported(0, Usage(input_tokens=100, output_tokens=7, cost_usd=0.01), "s-1"), Reported(2, Usage(), "s-1")]
SEEN = Usage(input_tokens=25, output_tokens=15)


async def _listen(host: str) -> None:
    """The grants never listen in these tests."""


def grants() -> CredentialGrants:
    return CredentialGrants({}, RunTokens(b"k" * 32, is_live=lambda run_id: True), port=0, listen=_listen)


def test_the_agents_own_report_wins_over_what_the_proxy_counted() -> None:
    assert run_usage(OWN, SEEN, "s-1") == OWN


def test_without_a_report_the_proxy_count_is_the_runs_usage_at_its_own_index() -> None:
    assert run_usage([], SEEN, "s-2") == [Reported(PROXY_INDEX, SEEN, "s-2")]


def test_with_neither_the_run_used_nothing_on_record() -> None:
    assert run_usage([], None, "s-1") == []


def test_the_proxy_count_of_a_run_is_given_once() -> None:
    counted = grants()
    counted.observe("run-1", TokenCounts(input=25, output=15))
    counted.observe("run-1", TokenCounts(output=3))
    assert counted.observed("run-1") == Usage(input_tokens=25, output_tokens=18)
    assert counted.observed("run-1") is None


def test_the_proxy_keeps_counts_of_the_latest_thousand_runs_only() -> None:
    counted = grants()
    for n in range(1001):
        counted.observe(f"run-{n}", TokenCounts(output=1))
    counted.observe("run-1", TokenCounts(output=1))  # seen again: the newest now, kept
    counted.observe("run-1001", TokenCounts(output=1))
    assert counted.observed("run-0") is None and counted.observed("run-2") is None
    assert counted.observed("run-1") == Usage(output_tokens=2)
    assert counted.observed("run-3") == counted.observed("run-1001") == Usage(output_tokens=1)
