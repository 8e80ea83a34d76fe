"""The fire path's shortcuts change nothing observable: IntentSink's packed rows, ids made ahead."""

from __future__ import annotations

import numpy as np

from kairos.records import CLIENT_ORDER_ID_LEN, ORDER_INTENT
from kairos.strategy.api import INTENT_ROW, ROW_CREATED, ROW_ORIGIN, IntentSink, ManualClock, OrderIds, new_run_id
from tests.unit.strategy.helpers import T0


def test_every_field_lands_where_the_dtype_puts_it() -> None:
    """A distinct value in every field: a struct offset or width off by one changes the bytes."""
    sink = IntentSink(ManualClock(T0))
    sink.new(0x0102, b"K" * CLIENT_ORDER_ID_LEN, 0x0304, 0x05060708, 9, 10, 11, -1.5, 2.25, T0 - 3)
    sink.cancel(7, b"Kx", 8, 9, T0 - 4)
    expected = np.zeros(2, ORDER_INTENT)
    expected[:] = [(T0, T0 - 3, -1.5, 2.25, b"K" * CLIENT_ORDER_ID_LEN, 0x05060708, 0x0102, 0x0304, 9, 10, 11, 1, 0,
                    b""),
                   (T0, T0 - 4, 0.0, 0.0, b"Kx", 9, 7, 8, 0, 0, 0, 2, 0, b"")]
    assert sink.take().tobytes() == expected.tobytes()


def test_take_rows_hands_the_tuples_and_leaves_later_intents_alone() -> None:
    sink = IntentSink(ManualClock(T0))
    sink.new(1, b"Ka", 1, 1, 1, 1, 3, 100.0, 1.0, T0 - 5)
    sink.new(1, b"Kb", 2, 1, 2, 1, 3, 101.0, 1.0, T0 - 6)
    rows = sink.take_rows()
    assert [(row[ROW_CREATED], row[ROW_ORIGIN]) for row in rows] == [(T0, T0 - 5), (T0, T0 - 6)]
    assert len(sink) == 0
    sink.new(1, b"Kc", 1, 1, 1, 1, 3, 100.0, 1.0, T0)
    assert [row[4] for row in rows] == [b"Ka", b"Kb"] and len(sink) == 1  # a new intent does not touch them
    packed = bytearray(INTENT_ROW.size * 2)
    for i, row in enumerate(rows):
        INTENT_ROW.pack_into(packed, i * INTENT_ROW.size, *row)
    assert [r["client_order_id"] for r in np.frombuffer(packed, ORDER_INTENT)] == [b"Ka", b"Kb"]
    (last,) = sink.take()
    assert last["client_order_id"] == b"Kc" and sink.take_rows() == []


def test_ids_made_ahead_are_the_same_ids_in_the_same_order() -> None:
    plain, ahead = OrderIds(1, new_run_id(T0)), OrderIds(1, new_run_id(T0))
    expected = [plain.next() for _ in range(100)]
    got = []
    for step in range(25):  # stock topped up between draws, sometimes drained past it
        ahead.prepare(step % 5)
        got.extend(ahead.next() for _ in range(4))
    assert got == expected
