"""PlaceOrder idempotency across supervisor restarts: the placements log, restored and compacted."""

from __future__ import annotations

from pathlib import Path

from kairos.api.events import PLACE_OUTCOMES, Outcome
from kairos.api.orders import Placements
from kairos.api.pb import pb
from kairos.api.validation import OrderCommand
from kairos.records import OrderType, Side, Tif, Venue


def cmd(cid: str, qty: float = 0.1) -> OrderCommand:
    return OrderCommand(cid, Venue.BINANCE, 1, Side.BUY, OrderType.LIMIT, Tif.GTC, 100.0, qty, False)


def ack(cid: str) -> object:
    return pb.ExecutionEvent(client_order_id=cid, kind=pb.EXEC_KIND_ACK, venue=pb.VENUE_BINANCE,
                             instrument="BTC-USDT", price=100.0, order_quantity=0.1, ts_event_ns=123)


def place(placements: Placements, command: OrderCommand) -> tuple[object, bool]:
    return placements.begin(command, Outcome(PLACE_OUTCOMES))


def test_outcomes_and_unseen_outcomes_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    first = Placements(path)
    acked, sent = place(first, cmd("a"))
    assert sent
    acked.outcome.set(ack("a"))
    place(first, cmd("b"))  # queued; the supervisor stops before its outcome arrives
    first.close()

    again = Placements(path)
    a, sent_a = place(again, cmd("a"))
    b, sent_b = place(again, cmd("b"))
    assert not sent_a and not sent_b, "a restored id is never sent twice"
    assert a.outcome.wait(0) == ack("a") and a.cmd == cmd("a")
    assert b.outcome.wait(0) is None, "outcome never seen: answered pending at once, not after a wait"
    assert b.cmd == cmd("b") and b.cmd != cmd("b", qty=0.2)
    again.close()


def test_abandoned_ids_may_be_sent_again_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    first = Placements(path)
    placement, _ = place(first, cmd("full"))
    first.abandon(placement)
    first.close()
    again = Placements(path)
    assert place(again, cmd("full"))[1]
    again.close()


def test_bad_lines_are_skipped_and_the_log_is_compacted_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    first = Placements(path, limit=3)
    for i in range(6):
        placement, _ = place(first, cmd(f"id{i}"))
        placement.outcome.set(ack(f"id{i}"))
    first.close()
    with open(path, "ab") as fh:
        fh.write(b'{"c": "bad", "o": {"venue": 1}}\n{"c": "id5", "e": "zz"}\nnot json\n')
    again = Placements(path, limit=3)
    assert len(again) == 3
    assert place(again, cmd("id5"))[0].outcome.wait(0) == ack("id5"), "a bad outcome line does not erase a good one"
    assert [place(again, cmd(f"id{i}"))[1] for i in (3, 4, 5, 0)] == [False, False, False, True]
    again.close()
    assert len(path.read_text().splitlines()) == 2 * 3 + 1  # compacted at the restore, then one new first call
