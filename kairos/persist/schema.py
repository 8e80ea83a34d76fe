"""Tables, their idempotency keys, the staging layouts and the statements that move stage -> tables.

Every time-series table has a unique key that contains its time column (a partitioned or hyper
table can only enforce keys that include the partition column). A key must make distinct real
records distinct and a replayed record equal to its first copy:

- market data: ``ts_recv_ns`` (stamped once by the feed, when the frame arrived, and carried in the
  ring record, so every replay of that record has it) + venue + instrument + the venue's sequence
  (update id / trade id) [+ depth level | book status]. Two records of one kind, venue, instrument
  and frame share ts_recv_ns, so the feed contract is: they differ in venue_seq or level.
- execution events: ``(ts_event_ns, event_seq)`` — event_seq is the gate's counter; the timestamp
  keeps a key unique even if a gate restart ever started the counter again.
- orders: ``(venue, client_order_id)``, upserted from the latest event (never moved backwards).
- balances / positions: the gate's snapshot ``ts_ns`` + venue + asset / instrument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from kairos.errors import ConfigError
from kairos.persist.copybin import StageColumn, StageLayout
from kairos.records import ExecKind, Kind

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    """Schema names go into SQL text, so only plain lower-case identifiers are accepted."""
    if not _IDENT.match(schema):
        raise ConfigError(f"{schema!r} is not a plain lower-case SQL identifier", "persister.schema")
    return schema


@dataclass(frozen=True, slots=True)
class TimeTable:
    """A time-partitioned table: column DDL, unique key (includes ``time_column``)."""

    name: str
    columns: str
    key: tuple[str, ...]
    time_column: str


_MD_HEAD = "ts_recv_ns bigint NOT NULL, ts_exchange_ns bigint NOT NULL, venue smallint NOT NULL, "
_MD_HEAD += "instrument integer NOT NULL, venue_seq bigint NOT NULL, "
_TWO_SIDED = "bid_px double precision, bid_qty double precision, ask_px double precision, ask_qty double precision"
_MD_KEY = ("ts_recv_ns", "venue", "instrument", "venue_seq")

MD_TABLES: Final = (
    TimeTable("md_bbo", _MD_HEAD + _TWO_SIDED, _MD_KEY, "ts_recv_ns"),
    TimeTable("md_trades", _MD_HEAD + "price double precision, qty double precision, side smallint",
              _MD_KEY, "ts_recv_ns"),
    TimeTable("md_depth", _MD_HEAD + "level smallint NOT NULL, " + _TWO_SIDED, (*_MD_KEY, "level"), "ts_recv_ns"),
    TimeTable("md_status", _MD_HEAD + "status smallint NOT NULL", (*_MD_KEY, "status"), "ts_recv_ns"),
)

_EV_HEAD = "ts_event_ns bigint NOT NULL, event_seq bigint NOT NULL, ts_exchange_ns bigint, ts_origin_ns bigint, "
_EV_HEAD += "venue smallint NOT NULL, instrument integer NOT NULL, strategy smallint, client_order_id text NOT NULL, "
_EV_HEAD += "venue_order_id bigint, side smallint, price double precision, qty double precision, "
_EV_HEAD += "cum_qty double precision, fee double precision"
_EV_KEY = ("ts_event_ns", "event_seq")

EXEC_TABLES: Final = (
    TimeTable("order_events", _EV_HEAD + ", order_qty double precision, kind smallint NOT NULL, state smallint, "
              "reason smallint, flags smallint", _EV_KEY, "ts_event_ns"),
    TimeTable("fills", _EV_HEAD, _EV_KEY, "ts_event_ns"),
)

STATE_TABLES: Final = (
    TimeTable("balances", "ts_ns bigint NOT NULL, venue smallint NOT NULL, asset text NOT NULL, "
              "free double precision, locked double precision", ("ts_ns", "venue", "asset"), "ts_ns"),
    TimeTable("positions", "ts_ns bigint NOT NULL, venue smallint NOT NULL, instrument integer NOT NULL, "
              "qty double precision, avg_px double precision, realized_pnl double precision",
              ("ts_ns", "venue", "instrument"), "ts_ns"),
)

TIME_TABLES: Final = MD_TABLES + EXEC_TABLES + STATE_TABLES

ORDERS_DDL: Final = """CREATE TABLE {s}.orders (
    venue smallint NOT NULL, client_order_id text NOT NULL, instrument integer NOT NULL, strategy smallint,
    side smallint, order_qty double precision, cum_qty double precision, state smallint, last_kind smallint,
    reason smallint, venue_order_id bigint, created_ns bigint NOT NULL, updated_ns bigint NOT NULL,
    last_event_seq bigint NOT NULL, PRIMARY KEY (venue, client_order_id))"""

STAGE_MD: Final = StageLayout("kairos_stage_md", (
    StageColumn("ts_recv_ns", ">i8"), StageColumn("ts_exchange_ns", ">i8"), StageColumn("venue_seq", ">i8"),
    StageColumn("price", ">f8"), StageColumn("qty", ">f8"), StageColumn("price2", ">f8"),
    StageColumn("qty2", ">f8"), StageColumn("instrument", ">i4"), StageColumn("venue", ">i2"),
    StageColumn("kind", ">i2"), StageColumn("flags", ">i2"),
))

STAGE_EVENTS: Final = StageLayout("kairos_stage_events", (
    StageColumn("ts_event_ns", ">i8"), StageColumn("event_seq", ">i8"), StageColumn("ts_exchange_ns", ">i8"),
    StageColumn("ts_origin_ns", ">i8"), StageColumn("price", ">f8"), StageColumn("qty", ">f8"),
    StageColumn("cum_qty", ">f8"), StageColumn("order_qty", ">f8"), StageColumn("fee", ">f8"),
    StageColumn("client_order_id", "S32"), StageColumn("venue_order_id", ">i8"),
    StageColumn("instrument", ">i4"), StageColumn("venue", ">i2"), StageColumn("strategy", ">i2"),
    StageColumn("reason", ">i2"), StageColumn("kind", ">i2"), StageColumn("side", ">i2"),
    StageColumn("state", ">i2"), StageColumn("flags", ">i2"),
))

_HEAD = (StageColumn("ts_recv_ns", ">i8"), StageColumn("ts_exchange_ns", ">i8"), StageColumn("venue", ">i2"),
         StageColumn("instrument", ">i4"), StageColumn("venue_seq", ">i8"))
_QUOTE = (StageColumn("bid_px", ">f8", "price"), StageColumn("bid_qty", ">f8", "qty"),
          StageColumn("ask_px", ">f8", "price2"), StageColumn("ask_qty", ">f8", "qty2"))
_DIRECT_MD = (
    (Kind.BBO, "md_bbo", _HEAD + _QUOTE),
    (Kind.TRADE, "md_trades", (*_HEAD, StageColumn("price", ">f8"), StageColumn("qty", ">f8"),
                               StageColumn("side", ">i2", "flags"))),
    (Kind.DEPTH, "md_depth", (*_HEAD, StageColumn("level", ">i2", "flags"), *_QUOTE)),
    (Kind.STATUS, "md_status", (*_HEAD, StageColumn("status", ">i2", "flags"))),
)


def direct_md_layouts(schema: str) -> tuple[tuple[Kind, StageLayout], ...]:
    """Per market-data kind, a COPY straight into its table (the fast path for batches never seen)."""
    return tuple((kind, StageLayout(f"{schema}.{table}", cols)) for kind, table, cols in _DIRECT_MD)


_MD_COLS = "ts_recv_ns, ts_exchange_ns, venue, instrument, venue_seq"
_MD_INSERT = "INSERT INTO {s}.%s (%s, %s) SELECT %s, %s FROM kairos_stage_md WHERE kind = %d ON CONFLICT DO NOTHING"
_TWO = "bid_px, bid_qty, ask_px, ask_qty"
_FROM_TWO = "price, qty, price2, qty2"

MD_INSERTS: Final = (
    _MD_INSERT % ("md_bbo", _MD_COLS, _TWO, _MD_COLS, _FROM_TWO, Kind.BBO),
    _MD_INSERT % ("md_trades", _MD_COLS, "price, qty, side", _MD_COLS, "price, qty, flags", Kind.TRADE),
    _MD_INSERT % ("md_depth", _MD_COLS, "level, " + _TWO, _MD_COLS, "flags, " + _FROM_TWO, Kind.DEPTH),
    _MD_INSERT % ("md_status", _MD_COLS, "status", _MD_COLS, "flags", Kind.STATUS),
)

_CID = "encode(rtrim(client_order_id, '\\x00'::bytea), 'escape')"
_EV_COLS = ("ts_event_ns, event_seq, ts_exchange_ns, ts_origin_ns, venue, instrument, strategy, client_order_id, "
            "venue_order_id, side, price, qty, cum_qty, fee")
_EV_SELECT = _EV_COLS.replace("client_order_id", _CID)

EVENT_INSERTS: Final = (
    f"INSERT INTO {{s}}.order_events ({_EV_COLS}, order_qty, kind, state, reason, flags) "
    f"SELECT {_EV_SELECT}, order_qty, kind, state, reason, flags FROM kairos_stage_events ON CONFLICT DO NOTHING",
    f"INSERT INTO {{s}}.fills ({_EV_COLS}) SELECT {_EV_SELECT} FROM kairos_stage_events "
    f"WHERE kind = {ExecKind.FILL:d} ON CONFLICT DO NOTHING",
    f"""INSERT INTO {{s}}.orders AS o (venue, client_order_id, instrument, strategy, side, order_qty, cum_qty,
        state, last_kind, reason, venue_order_id, created_ns, updated_ns, last_event_seq)
    SELECT DISTINCT ON (venue, cid) venue, cid, instrument, strategy, side, order_qty, cum_qty, state, kind,
        reason, venue_order_id, min(ts_event_ns) OVER (PARTITION BY venue, cid), ts_event_ns, event_seq
    FROM (SELECT *, {_CID} AS cid FROM kairos_stage_events) e WHERE cid <> ''
    ORDER BY venue, cid, ts_event_ns DESC, event_seq DESC
    ON CONFLICT (venue, client_order_id) DO UPDATE SET instrument = EXCLUDED.instrument,
        strategy = EXCLUDED.strategy, side = EXCLUDED.side, order_qty = EXCLUDED.order_qty,
        cum_qty = EXCLUDED.cum_qty, state = EXCLUDED.state, last_kind = EXCLUDED.last_kind,
        reason = EXCLUDED.reason, venue_order_id = EXCLUDED.venue_order_id,
        created_ns = LEAST(o.created_ns, EXCLUDED.created_ns), updated_ns = EXCLUDED.updated_ns,
        last_event_seq = EXCLUDED.last_event_seq
    WHERE (o.updated_ns, o.last_event_seq) <= (EXCLUDED.updated_ns, EXCLUDED.last_event_seq)""",
)

STATE_INSERTS: Final = (
    "INSERT INTO {s}.balances (ts_ns, venue, asset, free, locked) VALUES %s ON CONFLICT DO NOTHING",
    "INSERT INTO {s}.positions (ts_ns, venue, instrument, qty, avg_px, realized_pnl) VALUES %s "
    "ON CONFLICT DO NOTHING",
)

VIEWS_DDL: Final = tuple(
    f"CREATE OR REPLACE VIEW {{s}}.{t.name}_v AS SELECT to_timestamp({t.time_column} / 1e9) AS ts, * "
    f"FROM {{s}}.{t.name}"
    for t in TIME_TABLES
)
