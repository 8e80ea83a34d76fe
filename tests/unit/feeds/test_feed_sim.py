"""Protocol rules against the simulator over real sockets: sync, gaps, reconnects, keepalive, bad input."""

from __future__ import annotations

import dataclasses
import time

import pytest
import requests

from kairos.errors import BookSyncError, FeedError
from kairos.feeds import FEEDS
from kairos.feeds.binance import BinanceFeed
from kairos.feeds.session import WsSession
from kairos.feeds.sync import State
from kairos.records import BookStatus, Kind, Venue
from tests.unit.feeds.conftest import assert_book_matches, in_step, pump, sim_settings, sync_up

FAST = {"ws_reconnect_delay_ms": 50, "ws_max_reconnect_delay_ms": 400, "watchdog_ms": 5000}
VENUES = [Venue.BINANCE, Venue.OKX, Venue.BYBIT]


def _fault(server, venue: Venue, **body: object) -> None:
    response = requests.post(f"{server.urls(venue).rest_url}/_sim/fault", json=body, timeout=5)
    assert response.status_code == 200, response.text


def _bbo_is_current(out, server, venue: Venue, instrument: int, symbol: str) -> bool:
    best = server.market.best(venue, symbol)
    bbo = out.kind(Kind.BBO, instrument)
    return len(bbo) > 0 and (bbo[-1]["price"], bbo[-1]["price2"]) == (float(best[0].price), float(best[1].price))


def _all_live(agent) -> bool:
    return all(t.state == State.LIVE for t in agent.sync.tracks.values())


def _steps(server, count: int) -> None:
    for _ in range(count):
        server.market.step()


@pytest.mark.parametrize(("venue", "ws_snapshot"), [(Venue.BINANCE, True), (Venue.OKX, True), (Venue.OKX, False),
                                                   (Venue.BYBIT, True)])
def test_books_sync_and_equal_the_venue_book(make_sim, make_agent, venue: Venue, ws_snapshot: bool) -> None:
    settings = sim_settings(FAST, rate_hz=0.0, venues={"okx": {"ws_snapshot": ws_snapshot}})
    server = make_sim(settings)
    agent, out = make_agent(settings, server, venue)
    assert sync_up(agent, server, venue)
    _steps(server, 40)
    assert pump(agent, lambda: in_step(agent, server, venue))
    assert_book_matches(out, agent, server, venue, settings.feeds)
    assert pump(agent, lambda: all(_bbo_is_current(out, server, venue, i, t.symbol)  # bookTicker may trail depth
                                   for i, t in agent.sync.tracks.items()))
    for instrument in agent.sync.tracks:
        assert out.statuses(instrument) == [BookStatus.SYNCED]
        assert out.kind(Kind.BBO, instrument)[-1]["ts_recv_ns"] > 0
        assert out.kind(Kind.DEPTH, instrument)[-1]["ts_exchange_ns"] > 0
    assert agent.sync.counts["gaps"] == 0 and agent.tally.total == 0
    assert agent.sync.counts["snapshots"] == 2 and server.hubs[venue].stats["connections"] == 1
    rest_seeded = venue == Venue.BINANCE or not ws_snapshot  # OKX: only without a WS snapshot; Bybit never
    assert agent.sync.counts["rest_requests"] == (2 if rest_seeded else 0)


@pytest.mark.parametrize("venue", VENUES)
def test_gap_resyncs_only_that_book(make_sim, make_agent, venue: Venue) -> None:
    settings = sim_settings(FAST, rate_hz=0.0, venues={"okx": {"ws_snapshot": False}})
    server = make_sim(settings)
    agent, out = make_agent(settings, server, venue)
    assert sync_up(agent, server, venue)
    gapped = server.market.symbols(venue)[0]
    _fault(server, venue, kind="gap", symbol=gapped)
    _steps(server, 30)
    assert pump(agent, lambda: in_step(agent, server, venue) and agent.sync.counts["snapshots"] == 3)
    by_symbol = {t.symbol: i for i, t in agent.sync.tracks.items()}
    assert out.statuses(by_symbol[gapped]) == [BookStatus.SYNCED, BookStatus.RESYNCING, BookStatus.SYNCED]
    for symbol, instrument in by_symbol.items():
        if symbol != gapped:
            assert out.statuses(instrument) == [BookStatus.SYNCED]
    assert agent.sync.counts["gaps"] == 1 and agent.sync.counts["resyncs"] == 1
    assert server.hubs[venue].stats["connections"] == 1
    assert agent.sync.counts["resubscribes"] == int(FEEDS[venue.name.lower()].caps.stream_snapshots)  # not REST
    assert_book_matches(out, agent, server, venue, settings.feeds)


@pytest.mark.parametrize("venue", VENUES)
def test_disconnect_reconnects_and_rebuilds_the_books(make_sim, make_agent, venue: Venue) -> None:
    settings = sim_settings(FAST, rate_hz=0.0)
    server = make_sim(settings)
    agent, out = make_agent(settings, server, venue)
    assert sync_up(agent, server, venue)
    _fault(server, venue, kind="disconnect", duration=0.3)
    assert pump(agent, lambda: agent.stats.disconnects == 1)
    _steps(server, 20)
    assert sync_up(agent, server, venue)
    for instrument in agent.sync.tracks:
        assert out.statuses(instrument) == [BookStatus.SYNCED, BookStatus.DISCONNECTED, BookStatus.SYNCED]
    assert server.hubs[venue].stats["connections"] >= 2
    assert_book_matches(out, agent, server, venue, settings.feeds)


def test_a_cycle_that_drains_the_socket_waits_at_once(make_sim, make_agent, monkeypatch) -> None:
    settings = sim_settings(FAST, rate_hz=0.0)
    server = make_sim(settings)
    agent, _ = make_agent(settings, server, Venue.BINANCE)
    assert sync_up(agent, server, Venue.BINANCE)
    waits: list[float] = []
    real_wait = WsSession.wait
    monkeypatch.setattr(WsSession, "wait", lambda self, timeout_s, fd: waits.append(timeout_s) or real_wait(
        self, timeout_s, fd))

    def cycle_with_frames() -> int:
        _steps(server, 1)
        for _ in range(10_000):  # bounded: the step's frames arrive within milliseconds
            work = agent.do_work()
            if work:
                return work
            time.sleep(0.001)
        raise AssertionError("the step's frames never arrived")

    agent.idle(cycle_with_frames())
    assert len(waits) == 1, "drained: no second cycle before waiting"
    monkeypatch.setattr("kairos.feeds.agent.MAX_FRAMES", 1)
    agent.idle(cycle_with_frames())
    assert len(waits) == 1, "stopped at the frame limit: more may be buffered, so no wait"


@pytest.mark.parametrize("venue", VENUES)
def test_stalled_stream_trips_the_watchdog(make_sim, make_agent, venue: Venue) -> None:
    settings = sim_settings({**FAST, "watchdog_ms": 300, "ping_interval_s": 20.0}, rate_hz=50.0)
    server = make_sim(settings)
    agent, _ = make_agent(settings, server, venue)
    assert pump(agent, lambda: _all_live(agent))
    _fault(server, venue, kind="stall", duration=1.0)
    assert pump(agent, lambda: agent.stats.reasons.get("watchdog", 0) >= 1)
    assert pump(agent, lambda: _all_live(agent) and agent.stats.connects >= 2)


def test_okx_keepalive_updates_keep_an_idle_book_live_and_in_sequence(make_sim, make_agent) -> None:
    settings = sim_settings({**FAST, "watchdog_ms": 600, "ping_interval_s": 20.0}, rate_hz=0.0,
                            venues={"okx": {"keepalive_s": 0.1}})
    server = make_sim(settings)
    agent, _ = make_agent(settings, server, Venue.OKX)
    assert sync_up(agent, server, Venue.OKX)
    hub = server.hubs[Venue.OKX]
    before = hub.stats["keepalives"]
    pump(agent, lambda: False, timeout_s=1.5)  # no market step: only keep-alives, well past the 600 ms watchdog
    assert hub.stats["keepalives"] - before >= 2 * len(agent.sync.tracks)
    assert agent.stats.connects == 1 and agent.stats.reasons.get("watchdog", 0) == 0
    assert _all_live(agent) and agent.sync.counts["gaps"] == 0
    _steps(server, 5)                                       # the next real updates continue the sequence
    assert pump(agent, lambda: in_step(agent, server, Venue.OKX))
    assert agent.sync.counts["gaps"] == 0 and agent.tally.total == 0


def test_okx_ping_is_answered_and_keeps_the_connection(make_sim, make_agent) -> None:
    settings = sim_settings({**FAST, "ping_interval_s": 0.15, "watchdog_ms": 60_000}, rate_hz=0.0)
    server = make_sim(settings)
    agent, _ = make_agent(settings, server, Venue.OKX)
    assert pump(agent, lambda: agent.stats.pongs >= 3, timeout_s=10)
    assert agent.pings_sent >= 3 and agent.stats.disconnects == 0 and agent.tally.total == 0


def test_binance_server_pings_are_answered_with_their_payload(make_sim, make_agent) -> None:
    settings = sim_settings({**FAST, "watchdog_ms": 60_000}, rate_hz=0.0,
                            venues={"binance": {"ping_interval_s": 0.1}})
    server = make_sim(settings)
    agent, _ = make_agent(settings, server, Venue.BINANCE)
    assert pump(agent, lambda: agent.stats.pings >= 10, timeout_s=10)  # > 3 intervals: the server accepted our pongs
    assert agent.stats.disconnects == 0 and server.hubs[Venue.BINANCE].stats["connections"] == 1
    assert len(server.hubs[Venue.BINANCE].sessions) == 1


def test_okx_unanswered_ping_reconnects(make_sim, make_agent) -> None:
    settings = sim_settings({**FAST, "ping_interval_s": 0.2, "watchdog_ms": 60_000}, rate_hz=0.0)
    server = make_sim(settings)
    agent, _ = make_agent(settings, server, Venue.OKX)
    assert pump(agent, lambda: agent.stats.connects == 1)
    _fault(server, Venue.OKX, kind="stall", duration=0.6)
    assert pump(agent, lambda: agent.stats.reasons.get("pong_timeout", 0) >= 1)
    assert pump(agent, lambda: agent.stats.connects >= 2)


@pytest.mark.parametrize("venue", VENUES)
def test_malformed_messages_are_counted_and_skipped(make_sim, make_agent, venue: Venue) -> None:
    settings = sim_settings(FAST, rate_hz=0.0)
    server = make_sim(settings)
    agent, out = make_agent(settings, server, venue)
    assert sync_up(agent, server, venue)
    _fault(server, venue, kind="malformed", count=6)
    assert pump(agent, lambda: agent.tally.total >= 6)
    assert agent.tally.counts["malformed_json"] == 4 and agent.tally.counts["bad_message"] == 2
    _steps(server, 20)
    assert pump(agent, lambda: in_step(agent, server, venue))
    assert agent.stats.disconnects == 0 and agent.sync.counts["gaps"] == 0
    assert_book_matches(out, agent, server, venue, settings.feeds)
    assert agent.stats.values(agent)["malformed"] == 4


@pytest.mark.parametrize("venue", VENUES)
def test_venue_shutdown_notice_reconnects_at_once(make_sim, make_agent, venue: Venue) -> None:
    slow_backoff = {"ws_reconnect_delay_ms": 10_000, "ws_max_reconnect_delay_ms": 10_000}
    settings = sim_settings({**FAST, **slow_backoff}, rate_hz=20.0)
    server = make_sim(settings)
    agent, _ = make_agent(settings, server, venue)
    assert pump(agent, lambda: _all_live(agent))
    _fault(server, venue, kind="shutdown")
    assert pump(agent, lambda: agent.stats.connects == 2, timeout_s=4.0)  # the 5-10 s backoff did not apply
    assert agent.stats.reasons == {"venue asked": 1}


class ShortSessionBinance(BinanceFeed):
    """Binance with its 24 h connection limit scaled down to 0.3 s (a variant is data, not code)."""

    caps = dataclasses.replace(BinanceFeed.caps, session_limit_s=0.3)


def test_drop_at_the_session_limit_reconnects_at_once(make_sim, make_agent) -> None:
    slow_backoff = {"ws_reconnect_delay_ms": 10_000, "ws_max_reconnect_delay_ms": 10_000}
    settings = sim_settings({**FAST, **slow_backoff}, rate_hz=20.0)
    server = make_sim(settings)
    agent, _ = make_agent(settings, server, Venue.BINANCE, ShortSessionBinance)
    opened = time.monotonic()
    assert pump(agent, lambda: agent.stats.connects == 1 and time.monotonic() - opened > 0.4)
    _fault(server, Venue.BINANCE, kind="disconnect")  # a reset, not a close frame
    assert pump(agent, lambda: agent.stats.connects == 2, timeout_s=4.0)  # not the 5-10 s backoff
    assert agent.stats.reasons.get("transport", 0) == 1


def test_slow_rest_snapshot_is_retried_until_it_works(make_sim, make_agent) -> None:
    settings = sim_settings({**FAST, "rest_timeout_s": 0.2, "snapshot_retries": 20}, rate_hz=20.0)
    server = make_sim(settings)
    _fault(server, Venue.BINANCE, kind="slow_rest", delay_ms=600, duration=1.0)
    agent, out = make_agent(settings, server, Venue.BINANCE)
    assert pump(agent, lambda: _all_live(agent))
    assert agent.sync.counts["snapshot_failures"] >= 1
    for instrument in agent.sync.tracks:
        assert out.statuses(instrument) == [BookStatus.SYNCED]


def test_snapshot_retries_are_bounded(make_sim, make_agent) -> None:
    settings = sim_settings({**FAST, "rest_timeout_s": 0.1, "snapshot_retries": 1}, rate_hz=20.0)
    server = make_sim(settings)
    _fault(server, Venue.BINANCE, kind="slow_rest", delay_ms=500, duration=30.0)
    agent, _ = make_agent(settings, server, Venue.BINANCE)
    with pytest.raises(BookSyncError):
        pump(agent, lambda: False, timeout_s=10)
    assert agent.sync.counts["snapshot_failures"] >= 2


def test_refused_connections_back_off_then_give_up(make_sim, make_agent) -> None:
    settings = sim_settings({**FAST, "ws_max_reconnect_attempts": 3}, rate_hz=0.0)
    server = make_sim(settings)
    _fault(server, Venue.BINANCE, kind="disconnect", duration=30.0)
    agent, _ = make_agent(settings, server, Venue.BINANCE)
    with pytest.raises(FeedError):
        pump(agent, lambda: False, timeout_s=10)
    assert agent.stats.connect_failures == 4 and server.hubs[Venue.BINANCE].stats["refused"] == 4
