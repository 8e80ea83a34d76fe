"""The Redis hot state as plain hashes, kept in memory too (pure: no I/O; keys in docs/PERSISTENCE.md).

A batch becomes `Changes` — absolute field values and field deletions, coalesced so each field is
written once (latest record wins). Every change is a plain set or delete, so applying the same
changes twice is harmless; positions are absolute too, summed here from fills newer than the
high-water mark (max event_seq, max ts_event_ns) kept in the same hashes: a fill is new if either
is above the mark, so a recreated events ring (event_seq from 0 again, later clock) still counts.
Keeping the copy in memory is what lets the sink rewrite everything into a Redis that restarted empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import orjson

from kairos.persist.batch import Batch
from kairos.persist.gatestate import BalanceRow
from kairos.records import BookStatus, ExecKind, Kind, OrderState, Side, Venue

TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED})
Hashes = dict[str, dict[str, str]]


def enum_name(enum: type, value: int) -> str:
    return enum(value).name if value in enum._value2member_map_ else str(value)


@dataclass(slots=True)
class Changes:
    sets: Hashes = field(default_factory=dict)
    deletes: dict[str, set[str]] = field(default_factory=dict)

    def set(self, name: str, key: str, value: str) -> None:
        self.sets.setdefault(name, {})[key] = value
        self.deletes.get(name, set()).discard(key)

    def delete(self, name: str, key: str) -> None:
        self.deletes.setdefault(name, set()).add(key)
        self.sets.get(name, {}).pop(key, None)

    def __bool__(self) -> bool:
        return any(self.sets.values()) or any(self.deletes.values())


class HotState:
    """Hash name -> field -> value, for every hash under ``prefix`` this sink owns."""

    def __init__(self, prefix: str, symbols: Mapping[int, str]) -> None:
        self.prefix, self._symbols = prefix, symbols
        self.hashes: Hashes = {}
        self.hwm_key = f"{prefix}:positions:hwm"

    def symbol(self, instrument: int) -> str:
        return self._symbols.get(instrument) or str(instrument)

    def changes(self, batch: Batch) -> Changes:
        out = Changes()
        self._books(out, batch.market_data())
        events = batch.exec_events()
        self._orders(out, events)
        self._positions(out, events)
        self._balances(out, batch.balances)
        return out

    def apply(self, changes: Changes) -> None:
        for name, fields in changes.sets.items():
            self.hashes.setdefault(name, {}).update(fields)
        for name, keys in changes.deletes.items():
            current = self.hashes.get(name, {})
            for key in keys:
                current.pop(key, None)

    def _books(self, out: Changes, md: np.ndarray) -> None:
        """Per venue+instrument: the last BBO's quote, then ``book_status`` from a later STATUS if any."""
        key = (md["venue"].astype(np.uint64) << np.uint64(32)) | md["instrument"].astype(np.uint64)
        last_bbo = _last_per_key(key, md["kind"] == Kind.BBO)
        for i in last_bbo.values():
            rec = md[i]
            name = self._book_name(rec)
            for field_, value in (("bid_px", rec["price"]), ("bid_qty", rec["qty"]), ("ask_px", rec["price2"]),
                                  ("ask_qty", rec["qty2"])):
                out.set(name, field_, repr(float(value)))
            for field_ in ("ts_exchange_ns", "ts_recv_ns", "venue_seq"):
                out.set(name, field_, str(int(rec[field_])))
            out.set(name, "book_status", BookStatus.SYNCED.name)
        for k, i in _last_per_key(key, md["kind"] == Kind.STATUS).items():
            if i > last_bbo.get(k, -1):
                out.set(self._book_name(md[i]), "book_status", enum_name(BookStatus, int(md[i]["flags"])))

    def _venue_key(self, kind: str, venue: int) -> str:
        """``{prefix}:{kind}:{venue}``: the Redis key scheme of docs/PERSISTENCE.md, in one place."""
        return f"{self.prefix}:{kind}:{enum_name(Venue, venue).lower()}"

    def _book_name(self, rec: np.void) -> str:
        return f"{self._venue_key('bbo', int(rec['venue']))}:{self.symbol(int(rec['instrument']))}"

    def _orders(self, out: Changes, events: np.ndarray) -> None:
        for ev in events[events["kind"] != ExecKind.STATE]:
            cid = bytes(ev["client_order_id"]).decode("ascii", "replace").replace("\x00", "?")
            if not cid:
                continue
            name = self._venue_key("orders:open", int(ev["venue"]))
            if int(ev["state"]) in TERMINAL:
                out.delete(name, cid)
            else:
                out.set(name, cid, self._order_json(ev, cid))

    def _order_json(self, ev: np.void, cid: str) -> str:
        return orjson.dumps({
            "client_order_id": cid, "instrument": self.symbol(int(ev["instrument"])),
            "side": enum_name(Side, int(ev["side"])), "state": enum_name(OrderState, int(ev["state"])),
            "price": float(ev["price"]), "order_qty": float(ev["order_qty"]), "cum_qty": float(ev["cum_qty"]),
            "venue_order_id": int(ev["venue_order_id"]), "strategy": int(ev["strategy"]),
            "ts_event_ns": int(ev["ts_event_ns"]), "event_seq": int(ev["event_seq"]),
        }).decode()

    def _balances(self, out: Changes, rows: list[BalanceRow]) -> None:
        for ts, venue, asset, free, locked in rows:
            value = orjson.dumps({"free": free, "locked": locked, "ts_ns": ts}).decode()
            out.set(self._venue_key("balances", venue), asset, value)

    def _positions(self, out: Changes, events: np.ndarray) -> None:
        """Fills newer than the high-water mark move positions; a replayed fill is not newer."""
        hwm = self.hashes.get(self.hwm_key, {})
        hwm_seq, hwm_ts = int(hwm.get("event_seq", -1)), int(hwm.get("ts_event_ns", -1))
        qty: dict[tuple[str, str], float] = {}
        for ev in events[events["kind"] == ExecKind.FILL]:
            seq, ts = int(ev["event_seq"]), int(ev["ts_event_ns"])
            if seq <= hwm_seq and ts <= hwm_ts:
                continue
            name = self._venue_key("positions", int(ev["venue"]))
            key = (name, self.symbol(int(ev["instrument"])))
            if key not in qty:
                qty[key] = float(self.hashes.get(name, {}).get(key[1], 0.0))
            qty[key] += float(ev["qty"]) if ev["side"] == Side.BUY else -float(ev["qty"])
            hwm_seq, hwm_ts = max(hwm_seq, seq), max(hwm_ts, ts)
        for (name, symbol), value in qty.items():
            out.set(name, symbol, repr(value))
        if qty:
            out.set(self.hwm_key, "event_seq", str(hwm_seq))
            out.set(self.hwm_key, "ts_event_ns", str(hwm_ts))


def _last_per_key(key: np.ndarray, mask: np.ndarray) -> dict[int, int]:
    """key -> index of its last occurrence among ``mask`` (vectorised: unique over the reversed keys)."""
    where = np.flatnonzero(mask)
    if not len(where):
        return {}
    uniq, first_in_reversed = np.unique(key[where][::-1], return_index=True)
    return dict(zip(uniq.tolist(), where[len(where) - 1 - first_in_reversed].tolist(), strict=True))
