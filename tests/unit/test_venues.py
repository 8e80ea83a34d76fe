"""The venue table (kairos/venues.py) is consistent with everything derived from it."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path
from typing import Final

import pytest

import kairos
from kairos import config
from kairos.api.pb import pb
from kairos.config import PINNABLE_ROLES
from kairos.execution import EXECUTORS, STREAMS
from kairos.feeds import FEEDS
from kairos.persist.batch import MD_STREAMS, RING_STREAMS, Stream
from kairos.records import Venue
from kairos.supervisor.specs import ROLES
from kairos.venues import NAMES, VENUES, VenueSpec, resolve


@pytest.mark.parametrize("row", VENUES, ids=lambda r: r.name)
def test_every_module_of_a_row_is_that_venue(row: VenueSpec) -> None:
    for path in (row.feed, row.executor, row.sim_public, row.sim_trading):
        assert resolve(path).venue is row.venue, path
    assert resolve(row.limits).venue == row.name
    assert not row.private or row.private.startswith(f"kairos.execution.stream_{row.name}:")
    assert not row.sim_private or resolve(row.sim_private).venue is row.venue
    assert row.name == row.venue.name.lower()


def test_ids_are_unique_and_never_collide_with_engine_streams() -> None:
    assert len({r.venue for r in VENUES}) == len({r.name for r in VENUES}) == len(VENUES)
    assert len({int(s) for s in Stream}) == len(Stream.__members__)  # no alias: every id distinct
    assert MD_STREAMS.isdisjoint({Stream.EVENTS, Stream.GATE_STATE})


def test_proto_enum_matches_the_wire_enum() -> None:
    for venue in Venue:
        if venue is not Venue.NONE:
            assert pb.Venue.Value(f"VENUE_{venue.name}") == venue


def test_everything_per_venue_derives_from_the_table() -> None:
    assert tuple(FEEDS) == tuple(EXECUTORS) == NAMES
    assert set(STREAMS) == {r.name for r in VENUES if r.private}
    assert {f"feed.{n}" for n in NAMES} <= set(PINNABLE_ROLES)
    assert [r.args for r in ROLES if r.module == "procs.feed"] == [("--venue", n) for n in NAMES]
    assert {name for name in RING_STREAMS if name.startswith("md.")} == {f"md.{n}" for n in NAMES}
    assert set(config.load(env={}).venues) <= set(NAMES)



KAIROS = Path(kairos.__file__).parent
ENGINE: Final = (KAIROS, KAIROS.parent / "procs")
NAMING_ALLOWED: Final = {
    "records.py": "the wire enum (Venue)",
}
"""Modules outside a venue's own that may name it in code (issue 13: at most three)."""
DEFAULT_VENUE: Final = ("binance", {"config.py": "strategy.market_making.venue's default",
                                    "persist/synthetic.py": "the venue of synthetic test records"})
"""The venue that is also named where a default venue is needed."""


def _names_in_code(path: Path, name: str) -> bool:
    """True when ``name`` occurs in a token that is neither a comment nor a docstring."""
    previous = tokenize.NEWLINE
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.COMMENT or (token.type == tokenize.STRING and previous in _STATEMENT_START):
            continue
        if name in token.string.lower():
            return True
        previous = token.type if token.type != tokenize.NL else previous
    return False


_STATEMENT_START: Final = (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)


@pytest.mark.parametrize("row", VENUES, ids=lambda r: r.name)
def test_a_venue_is_named_only_in_its_own_modules_and_the_table(row: VenueSpec) -> None:
    """kairos/ and procs/ (whose modules are named ``procs/<name>.py``); at most three outside a venue's own."""
    naming = sorted(rel for root in ENGINE for path in root.rglob("*.py")
                    if row.name not in (rel := _rel(root, path)) and not rel.startswith("api/gen/")
                    and rel != "venues.py" and _names_in_code(path, row.name))
    allowed = NAMING_ALLOWED | (DEFAULT_VENUE[1] if row.name == DEFAULT_VENUE[0] else {})
    assert set(naming) <= set(allowed), f"venue code outside the venue's modules: {naming}"
    assert len(naming) <= 3, naming


def _rel(root: Path, path: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel if root == KAIROS else f"{root.name}/{rel}"


def test_the_naming_check_sees_code_and_skips_comments_and_docstrings(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text('"""okx in a docstring."""\n# okx in a comment\ndef f() -> None:\n    """okx."""\n')
    assert not _names_in_code(source, "okx")
    source.write_text(source.read_text() + 'ROWS = (1,\n        "kairos.feeds.okx:OkxFeed")\n')
    assert _names_in_code(source, "okx")
