"""Load-balancing strategies and the group's choice: distributions, EWMA, cost, headroom, exclusions."""

from __future__ import annotations

from collections import Counter
from time import monotonic

import pytest

from sluicegate.config.schema import Price
from sluicegate.routing.deployment import EWMA_ALPHA, EWMA_STALE_S
from sluicegate.routing.strategies import headroom
from tests.unit.routing_support import deployment, group


def picks(g, n: int, **kwargs) -> Counter[str]:  # type: ignore[no-untyped-def]
    return Counter(g.choose(**kwargs).label for _ in range(n))


def test_round_robin_spreads_evenly() -> None:
    """Round-robin gives each of three deployments exactly a third of 300 picks, in turn."""
    g = group("round-robin", deployment("a"), deployment("b"), deployment("c"))
    order = [g.choose().label for _ in range(6)]
    assert order == ["a", "b", "c", "a", "b", "c"]
    assert picks(g, 300) == {"a": 100, "b": 100, "c": 100}


def test_weighted_follows_weights_exactly_and_interleaves() -> None:
    """Weighted 3:1 gives 75/25 over 400 picks and never sends four in a row to the heavy one."""
    g = group("weighted", deployment("heavy", weight=3), deployment("light", weight=1))
    sequence = [g.choose().label for _ in range(400)]
    assert Counter(sequence) == {"heavy": 300, "light": 100}
    assert "light" in sequence[:4] and all("light" in sequence[i : i + 4] for i in range(0, 396, 4))


def test_weighted_handles_fractional_weights() -> None:
    """Weights 0.5 and 1.5 split 1:3, like 1 and 3."""
    g = group("weighted", deployment("a", weight=0.5), deployment("b", weight=1.5))
    assert picks(g, 400) == {"a": 100, "b": 300}


def test_least_busy_picks_fewest_in_flight() -> None:
    """Least-busy takes the deployment with the fewest calls in flight; ties rotate."""
    a, b, c = deployment("a"), deployment("b"), deployment("c")
    g = group("least-busy", a, b, c)
    a.in_flight, b.in_flight, c.in_flight = 4, 1, 2
    assert picks(g, 10) == {"b": 10}
    b.in_flight = 2
    assert picks(g, 10) == {"b": 5, "c": 5}


def test_ewma_first_sample_sets_then_moves_by_alpha() -> None:
    """The first latency sample sets the EWMA; later ones move it by alpha towards the sample."""
    d = deployment("a")
    now = monotonic()
    d.record_latency(now, 0.100, streaming=False)
    assert d.latency_ewma_s == pytest.approx(0.100)
    d.record_latency(now + 1, 0.200, streaming=False)
    assert d.latency_ewma_s == pytest.approx(0.100 + EWMA_ALPHA * 0.100)
    d.record_latency(now + 2, 0.050, streaming=True)
    assert d.ttft_ewma_s == pytest.approx(0.050)
    assert d.latency_ewma_s == pytest.approx(0.130)  # streams feed their own EWMA


def test_stale_ewma_is_replaced_by_the_next_sample() -> None:
    """A sample arriving after a long quiet spell replaces the old EWMA rather than averaging with it."""
    d = deployment("a")
    now = monotonic()
    d.record_latency(now, 5.0, streaming=False)
    d.record_latency(now + EWMA_STALE_S + 1, 0.1, streaming=False)
    assert d.latency_ewma_s == pytest.approx(0.1)


def test_least_latency_prefers_fast_then_sheds_load_when_it_queues() -> None:
    """Least-latency takes the lowest EWMA, but EWMA x (in-flight + 1) sends work elsewhere under load."""
    fast, slow = deployment("fast"), deployment("slow")
    g = group("least-latency", fast, slow)
    now = monotonic()
    fast.record_latency(now, 0.1, streaming=False)
    slow.record_latency(now, 0.3, streaming=False)
    assert picks(g, 5, now=now) == {"fast": 5}
    fast.in_flight = 3  # 0.1 x 4 > 0.3 x 1
    assert picks(g, 5, now=now) == {"slow": 5}


def test_least_latency_uses_ttft_for_streams_and_probes_unmeasured() -> None:
    """Streams are ranked by time to first token; a deployment with no fresh sample is tried first."""
    a, b = deployment("a"), deployment("b")
    g = group("least-latency", a, b)
    now = monotonic()
    a.record_latency(now, 0.1, streaming=False)
    b.record_latency(now, 0.5, streaming=False)
    a.record_latency(now, 0.9, streaming=True)
    assert g.choose(streaming=True, now=now).label == "b"  # b has no TTFT sample yet: probe it
    b.record_latency(now, 0.2, streaming=True)
    assert g.choose(streaming=True, now=now).label == "b"
    assert g.choose(streaming=False, now=now).label == "a"


def test_lowest_cost_prefers_cheapest_and_puts_unknown_prices_last() -> None:
    """Lowest-cost ranks by input + output price; a deployment without a known price comes last."""
    cheap = deployment("cheap", price=Price(input_per_mtok=0.1, output_per_mtok=0.4))
    dear = deployment("dear", price=Price(input_per_mtok=2.5, output_per_mtok=10.0))
    g = group("lowest-cost", dear, cheap)
    assert picks(g, 6) == {"cheap": 6}
    assert g.choose(tried=[cheap]).label == "dear"


def test_lowest_cost_reads_the_price_table() -> None:
    """Without a `price:` the built-in table prices a known model, and it beats a pricier configured one."""
    table = deployment("table", model="gpt-4o-mini")
    table.entry = table.entry.__class__(name="m", provider="openai", model="gpt-4o-mini", api_key="k")
    dear = deployment("dear", price=Price(input_per_mtok=50, output_per_mtok=50))
    g = group("lowest-cost", dear, table)
    assert table.cost_per_mtok < dear.cost_per_mtok
    assert g.choose().label == "table"


def test_usage_aware_prefers_most_headroom() -> None:
    """Usage-aware takes the deployment furthest from its rpm/tpm this minute; no limits = full headroom."""
    a, b = deployment("a", rpm=10), deployment("b", rpm=100, tpm=1000)
    g = group("usage-aware", a, b)
    now = monotonic()
    for _ in range(5):
        g.count_request(a, now)  # a: 50% of rpm used
    g.count_tokens(b, now, 800)  # b: 80% of tpm used
    assert headroom(a, now) == pytest.approx(0.5)
    assert headroom(b, now) == pytest.approx(0.2)
    assert g.choose(now=now).label == "a"
    assert headroom(deployment("free"), now) == 1.0


def test_usage_counts_leave_the_window_after_a_minute() -> None:
    """Requests older than the rolling minute no longer count against rpm."""
    a = deployment("a", rpm=10)
    g = group("usage-aware", a, deployment("b", rpm=10))
    now = 1000.0
    for _ in range(10):
        g.count_request(a, now)
    assert headroom(a, now) == pytest.approx(0.0)
    assert headroom(a, now + 61) == pytest.approx(1.0)


def test_choose_skips_tried_then_allows_them_again() -> None:
    """A retry goes to a deployment the request has not tried; once all were tried, any may be retried."""
    a, b = deployment("a"), deployment("b")
    g = group("round-robin", a, b)
    assert {g.choose(tried=[a]).label for _ in range(4)} == {"b"}
    assert g.choose(tried=[a, b]) in (a, b)


def test_choose_skips_ejected_and_disabled_but_panics_when_all_are_out() -> None:
    """Ejected and disabled deployments are skipped; if every enabled one is ejected, they are used anyway."""
    a, b, c = deployment("a"), deployment("b"), deployment("c")
    g = group("round-robin", a, b, c)
    now = monotonic()
    a.health.ejected_until = now + 30
    c.disabled = True
    assert picks(g, 6, now=now) == {"b": 6}
    b.health.ejected_until = now + 30
    assert picks(g, 6, now=now).keys() == {"a", "b"}  # panic routing, still never the disabled one


def test_single_deployment_is_always_chosen() -> None:
    """A group of one returns its deployment whatever its health (it can never be ejected anyway)."""
    only = deployment("only")
    only.health.unhealthy = True
    assert group("least-latency", only).choose(tried=[only]) is only


def test_capability_filters_candidates() -> None:
    """Only deployments whose adapter can do the capability are candidates; none -> None."""
    g = group("round-robin", deployment("a"), deployment("b"))
    assert g.choose("embeddings") is not None
    assert g.choose("legacy:chat") is None  # the mock serves /v1/completions through chat only
