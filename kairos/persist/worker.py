"""One thread per sink: read the spool from the sink's checkpoint, write a batch, checkpoint, repeat.

The checkpoint moves only after the sink has committed the batch, so after any crash a sink
replays at most the batches since its last checkpoint, and the idempotent keys (PostgreSQL) or
the fill high-water mark and latest-wins hashes (Redis) make the replay change nothing. While the
sink is down the worker keeps the batch, backs off (up to ``retry_s``) and reconnects; the
ring-draining thread never notices. A batch the sink refuses for its content is split by frame and
the refused frames go to ``dead/<sink>.spool`` (same frame format), so nothing is silently lost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

from kairos.errors import BatchRejected, SinkUnavailable
from kairos.logs import ErrorTally
from kairos.persist.batch import Batch, collect
from kairos.persist.spool import Frame, Position, Spool, SpoolReader, encode_frame

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    def connect(self) -> None: ...

    def write(self, batch: Batch) -> None: ...

    def tick(self, now: float) -> None: ...

    def close(self) -> None: ...


class SinkWorker:
    """Owns its sink and its spool reader; the agent reads ``down``, ``position`` and the counters
    (``failures`` counts every failed connect or write)."""

    def __init__(self, sink: Sink, spool: Spool, batch_rows: int, flush_s: float, retry_s: float) -> None:
        self.sink, self._spool = sink, spool
        self._batch_rows, self._flush_s, self._retry_s = batch_rows, flush_s, retry_s
        self.position = spool.checkpoint_of(sink.name)
        self.up = self.down = False
        self.crashed: Exception | None = None
        self.rows = self.failures = self.dead_frames = self.disk_errors = 0
        self._stop = threading.Event()
        self._drain_until = 0.0
        self._tally = ErrorTally(log, interval_s=30.0)
        self._thread = threading.Thread(target=self._run, name=f"persist-{sink.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_s: float) -> None:
        """Finish what is spooled (at most ``drain_s`` while the sink is up), then close the sink."""
        self._drain_until = time.monotonic() + drain_s
        self._stop.set()
        self._spool.wake()

    def join(self) -> None:
        self._thread.join(max(0.0, self._drain_until - time.monotonic()) + self._flush_s + 5.0)

    def _run(self) -> None:
        reader = SpoolReader(self._spool, self.position)
        batch: Batch | None = None
        failures = 0
        try:
            while not self._finished(reader, batch):
                if self.up or self._connect():
                    batch = batch or collect(reader, self._spool.wait, self._batch_rows, self._flush_s)
                    if self._tick() and (not batch or self._deliver(batch)):
                        batch, failures = None, 0
                        continue
                failures += 1
                self._stop.wait(min(self._retry_s, self._retry_s * 2.0 ** (failures - 3)))
        except Exception as exc:  # a bug: make it loud, the agent exits and the supervisor restarts us
            log.exception("%s worker crashed", self.sink.name)
            self.crashed = exc
        finally:
            self.sink.close()

    def _finished(self, reader: SpoolReader, batch: Batch | None) -> bool:
        if not self._stop.is_set():
            return False
        caught_up = batch is None and reader.position >= self._spool.end
        return caught_up or not self.up or time.monotonic() > self._drain_until

    def _connect(self) -> bool:
        try:
            self.sink.connect()
        except SinkUnavailable as exc:
            self._tally(f"{self.sink.name} unavailable, spooling to {self._spool.directory}", str(exc))
            self.failures += 1
            self.down = True
            return False
        log.info("%s connected; writing from spool position %s", self.sink.name, tuple(self.position))
        self.up, self.down = True, False
        return True

    def _tick(self) -> bool:
        try:
            self.sink.tick(time.monotonic())
            return True
        except SinkUnavailable as exc:
            self._down(exc)
            return False

    def _deliver(self, batch: Batch) -> bool:
        """True once the batch is committed (or its refused frames dead-lettered) and checkpointed."""
        try:
            self._write(batch)
        except SinkUnavailable as exc:
            self._down(exc)
            return False
        except BatchRejected as exc:
            log.error("%s refused a batch of %d rows (%s): retrying frame by frame", self.sink.name, batch.rows, exc)
            if not self._split(batch):
                return False
        if batch.undecodable and not self._dead_letter(batch.undecodable, "unknown stream or record layout"):
            return False
        self._checkpoint(batch.end)
        return True

    def _write(self, batch: Batch) -> None:
        if batch.rows:
            self.sink.write(batch)
            self.rows += batch.rows

    def _split(self, batch: Batch) -> bool:
        for frame in batch.frames:
            single = Batch()
            single.add(frame)
            try:
                self._write(single)
            except BatchRejected as exc:
                if not self._dead_letter([frame], str(exc)):
                    return False
            except SinkUnavailable as exc:
                self._down(exc)
                return False
        return True

    def _dead_letter(self, frames: list[Frame], why: str) -> bool:
        """False if the frames could not be saved (disk full): the batch is kept and retried later."""
        path = self._spool.directory / "dead" / f"{self.sink.name}.spool"
        try:
            path.parent.mkdir(exist_ok=True)
            with open(path, "ab") as fh:
                for frame in frames:
                    fh.write(b"".join(encode_frame(frame.stream, frame.fingerprint, frame.payload)))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            self._disk_error(exc)
            return False
        self.dead_frames += len(frames)
        self._tally(f"{self.sink.name} dead-lettered frames to {path}", why)
        return True

    def _checkpoint(self, end: Position | None) -> None:
        """A checkpoint that cannot be written (disk full) is counted and the position moves on in
        memory: at worst a restart replays from the older one, which the sink's keys absorb."""
        if end is not None:
            try:
                self._spool.checkpoint(self.sink.name, end)
            except OSError as exc:
                self._disk_error(exc)
            self.position = end

    def _disk_error(self, exc: OSError) -> None:
        self.disk_errors += 1
        self._tally(f"{self.sink.name}: spool directory not writable (checkpoint or dead letter)", str(exc))

    def _down(self, exc: Exception) -> None:
        self.failures += 1
        self._tally(f"{self.sink.name} went down, spooling and retrying every <= {self._retry_s}s", str(exc))
        self.up, self.down = False, True
        self.sink.close()
