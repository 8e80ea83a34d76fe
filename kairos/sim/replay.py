"""Replay of recorded sessions (``capture/*.jsonl`` of the exchange samples, kept outside the repo).

Each line is ``{"recv_ts": s, "src"|"dir": ..., "url": ..., "raw": exact text}``. WebSocket frames
received from the venue (``src: ws`` / ``dir: recv``) are replayed to every client that connects,
with their recorded spacing divided by ``sim.replay_speed``; REST bodies (``src: rest``, Binance
depth snapshots) answer GET /api/v3/depth for their symbol. The venue of a file comes from its URLs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from kairos.errors import ConfigError
from kairos.records import Venue
from kairos.sim.router import Request, Response, Router, json_response
from kairos.venues import VENUES


@dataclass(slots=True)
class Recording:
    frames: list[tuple[float, str]] = field(default_factory=list)  # (seconds since first frame, text)
    depth: dict[str, str] = field(default_factory=dict)  # symbol -> REST body


def load_recordings(paths: str) -> dict[Venue, Recording]:
    """Parse ``sim.replay_file`` (comma-separated paths) into per-venue recordings."""
    out: dict[Venue, Recording] = {}
    for name in filter(None, (p.strip() for p in paths.split(","))):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"replay file not found: {path}", "sim.replay_file")
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                _add(out, orjson.loads(line), f"{path}:{line_no}")
    for recording in out.values():
        if recording.frames:
            first = recording.frames[0][0]
            recording.frames = [(t - first, text) for t, text in recording.frames]
    return out


def _add(out: dict[Venue, Recording], row: dict[str, object], where: str) -> None:
    url = str(row.get("url", ""))
    venue = next((row.venue for row in VENUES if row.name in url), None)
    if venue is None:
        raise ConfigError(f"cannot tell the venue of {url!r} ({where})", "sim.replay_file")
    recording = out.setdefault(venue, Recording())
    raw, source = str(row["raw"]), row.get("src") or row.get("dir")
    if source in ("ws", "recv"):
        recording.frames.append((float(row["recv_ts"]), raw))  # type: ignore[arg-type]
    elif source == "rest" and "/api/v3/depth" in url:
        symbol = parse_qs(urlsplit(url).query).get("symbol", [""])[0]
        recording.depth.setdefault(symbol, raw)


def register_replay_depth(router: Router, recording: Recording) -> None:
    """GET /api/v3/depth answered from the recording (the Binance random-walk route is not registered)."""

    def depth(request: Request) -> Response:
        body = recording.depth.get(request.query.get("symbol", ""))
        if body is None:
            return json_response({"code": -1121, "msg": "Invalid symbol."}, 400)
        return Response(200, body.encode(), {"Content-Type": "application/json"})

    router.register("GET", "/api/v3/depth", depth)
