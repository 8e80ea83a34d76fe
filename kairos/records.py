"""The only place a record dtype or wire enum is declared.

Every process maps the same fixed-size records; a ring stores ``fingerprint(dtype)`` in its header
and refuses to attach with another one. Fields are little-endian, largest first, padded to a
multiple of 64 bytes (one or two cache lines).

MARKET_DATA (64 B)::

    0        8          16          24       32       40        48        56     60   62 63
    +--------+----------+-----------+--------+--------+---------+---------+------+----+--+--+
    |ts_exch |ts_recv   |venue_seq  |price   |qty     |price2   |qty2     |instr |ven |k |fl|
    +--------+----------+-----------+--------+--------+---------+---------+------+----+--+--+

    kind BBO:    price/qty = best bid, price2/qty2 = best ask
    kind TRADE:  price/qty = trade, flags = aggressor Side
    kind DEPTH:  price/qty = bid level, price2/qty2 = ask level, flags = level index (0 = top);
                 a missing level is price 0, qty 0. One DEPTH burst = one book snapshot.
    kind STATUS: book invalidated (flags = BookStatus); consumers must drop their view of the book.

ORDER_INTENT (128 B): one order or cancel, from a strategy or from gRPC.
EXEC_EVENT (128 B): everything the gate says about an order (ack, reject + reason, fill, cancel).
ORDER_TRACE (64 B): one submitted order's timestamps (wall-clock ns): feed receipt of the tick
that triggered it, intent created, intent read by the gate, request handed to the executor.
"""

from __future__ import annotations

import zlib
from enum import IntEnum
from typing import Final

import numpy as np


class Venue(IntEnum):
    """Wire ids of venues (never reused); the venues themselves are declared in kairos/venues.py."""

    NONE = 0
    BINANCE = 1
    OKX = 2
    BYBIT = 3


class Kind(IntEnum):
    BBO = 1
    TRADE = 2
    DEPTH = 3
    STATUS = 4


class BookStatus(IntEnum):
    SYNCED = 0
    RESYNCING = 1
    DISCONNECTED = 2


class Side(IntEnum):
    NONE = 0
    BUY = 1
    SELL = 2


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2
    LIMIT_MAKER = 3


class Tif(IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3


class Action(IntEnum):
    """What an ORDER_INTENT asks the gate to do. SET_STATE carries the TradingState in ``flags``."""

    NEW = 1
    CANCEL = 2
    CANCEL_ALL = 3
    SET_STATE = 4


class IntentFlag(IntEnum):
    REDUCE_ONLY = 1
    MANUAL = 2


class ExecKind(IntEnum):
    ACK = 1
    REJECT = 2
    FILL = 3
    CANCELED = 4
    EXPIRED = 5
    CANCEL_REJECT = 6
    STATE = 7


class OrderState(IntEnum):
    NEW = 0
    ACK = 1
    PARTIAL = 2
    FILLED = 3
    CANCELED = 4
    REJECTED = 5
    EXPIRED = 6
    UNKNOWN = 7


class TradingState(IntEnum):
    ACTIVE = 0
    REDUCE_ONLY = 1
    HALTED = 2


class ProcState(IntEnum):
    """A process's own view of itself on the status board (the supervisor keeps child states)."""

    EMPTY = 0
    STARTING = 1
    RUNNING = 2
    DEGRADED = 3
    STOPPING = 4
    STOPPED = 5
    FAILED = 6


class ChildState(IntEnum):
    """The supervisor's view of a child (supervisord names; numbers match kairos.v1.ChildState)."""

    STOPPED = 1
    STARTING = 2
    RUNNING = 3
    BACKOFF = 4
    STOPPING = 5
    EXITED = 6
    FATAL = 7
    UNKNOWN = 8


class RejectReason(IntEnum):
    NONE = 0
    MAX_ORDER_QTY = 1
    MAX_ORDER_NOTIONAL = 2
    MAX_POSITION = 3
    MAX_GROSS_EXPOSURE = 4
    PRICE_BAND = 5
    ORDER_RATE = 6
    MAX_OPEN_ORDERS = 7
    INSUFFICIENT_BALANCE = 8
    TRADING_HALTED = 9
    REDUCE_ONLY = 10
    DUPLICATE_ORDER = 11
    UNKNOWN_INSTRUMENT = 12
    NO_MARK = 13
    INVALID_ORDER = 14
    UNKNOWN_ORDER = 15
    INTENT_DROPPED = 16  # never reached the gate: the strategy host found the intents ring full
    VENUE_REJECTED = 20
    VENUE_FILTER = 21
    VENUE_RATE_LIMIT = 22
    VENUE_AUTH = 23
    VENUE_UNAVAILABLE = 24
    VENUE_INSUFFICIENT_BALANCE = 25
    NOT_RECONCILED = 26
    MARK_UNAVAILABLE = 27  # the instrument's last valid mark on that venue is older than risk.mark_max_age_ms
    TICK_SIZE = 28  # limit price <= 0, or outside the venue's price range once rounded to its tick
    LOT_SIZE = 29  # quantity under one lot step, under the venue minimum or over its maximum once rounded
    MIN_NOTIONAL = 30  # price (mark for MARKET) x rounded quantity under the venue's minimum notional
    NON_NORMAL_NUMBER = 31  # price or quantity NaN, infinite or subnormal


CLIENT_ORDER_ID_LEN: Final = 32

MARKET_DATA: Final = np.dtype(
    [
        ("ts_exchange_ns", "<i8"),
        ("ts_recv_ns", "<i8"),
        ("venue_seq", "<u8"),
        ("price", "<f8"),
        ("qty", "<f8"),
        ("price2", "<f8"),
        ("qty2", "<f8"),
        ("instrument", "<u4"),
        ("venue", "<u2"),
        ("kind", "u1"),
        ("flags", "u1"),
    ],
    align=True,
)
assert MARKET_DATA.itemsize == 64, MARKET_DATA.itemsize

ORDER_INTENT: Final = np.dtype(
    [
        ("ts_created_ns", "<i8"),
        ("ts_origin_ns", "<i8"),
        ("price", "<f8"),
        ("qty", "<f8"),
        ("client_order_id", f"S{CLIENT_ORDER_ID_LEN}"),
        ("instrument", "<u4"),
        ("strategy", "<u2"),
        ("venue", "<u2"),
        ("side", "u1"),
        ("order_type", "u1"),
        ("tif", "u1"),
        ("action", "u1"),
        ("flags", "u1"),
        ("_pad", "V51"),
    ],
    align=True,
)
assert ORDER_INTENT.itemsize == 128, ORDER_INTENT.itemsize

# ORDER_INTENT field indices: positions in a record's tuple (``view.tolist()``), for hot paths that
# read rows as tuples (Agrona-style descriptor constants: a name, never a bare number).
INTENT_TS_CREATED_NS: Final = 0
INTENT_TS_ORIGIN_NS: Final = 1
INTENT_PRICE: Final = 2
INTENT_QTY: Final = 3
INTENT_CLIENT_ORDER_ID: Final = 4
INTENT_INSTRUMENT: Final = 5
INTENT_STRATEGY: Final = 6
INTENT_VENUE: Final = 7
INTENT_SIDE: Final = 8
INTENT_ORDER_TYPE: Final = 9
INTENT_TIF: Final = 10
INTENT_ACTION: Final = 11
INTENT_FLAGS: Final = 12
INTENT_FIELDS: Final = 13
"""Fields that carry data (every one before ``_pad``)."""
assert all(ORDER_INTENT.names[globals()[f"INTENT_{n.upper()}"]] == n for n in ORDER_INTENT.names[:INTENT_FIELDS])

EXEC_EVENT: Final = np.dtype(
    [
        ("ts_event_ns", "<i8"),
        ("ts_exchange_ns", "<i8"),
        ("ts_origin_ns", "<i8"),
        ("price", "<f8"),
        ("qty", "<f8"),
        ("cum_qty", "<f8"),
        ("order_qty", "<f8"),
        ("fee", "<f8"),
        ("client_order_id", f"S{CLIENT_ORDER_ID_LEN}"),
        ("venue_order_id", "<u8"),
        ("event_seq", "<u8"),
        ("instrument", "<u4"),
        ("venue", "<u2"),
        ("strategy", "<u2"),
        ("reason", "<u2"),
        ("kind", "u1"),
        ("side", "u1"),
        ("state", "u1"),
        ("flags", "u1"),
        ("_pad", "V2"),
    ],
    align=True,
)
assert EXEC_EVENT.itemsize == 128, EXEC_EVENT.itemsize


ORDER_TRACE: Final = np.dtype(
    [
        ("ts_origin_ns", "<i8"),
        ("ts_created_ns", "<i8"),
        ("ts_read_ns", "<i8"),
        ("ts_sent_ns", "<i8"),
        ("instrument", "<u4"),
        ("strategy", "<u2"),
        ("venue", "<u2"),
        ("side", "u1"),
        ("flags", "u1"),
        ("_pad", "V22"),
    ],
    align=True,
)
assert ORDER_TRACE.itemsize == 64, ORDER_TRACE.itemsize


def fingerprint(dtype: np.dtype) -> int:
    """CRC32 of the dtype's description: two processes agree on a layout iff this matches."""
    return zlib.crc32(repr((dtype.descr, dtype.itemsize)).encode())
