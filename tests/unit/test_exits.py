"""Exit notes (kairos/exits.py): what a dying process leaves for the supervisor, and how it is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from kairos import config, exits
from kairos.config import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return config.load(env={"KAIROS__LOGGING__DIR": str(tmp_path / "log"), "KAIROS__SHM_PREFIX": "pfx"})


def test_a_note_is_one_line_taken_once(settings: Settings, tmp_path: Path) -> None:
    path = exits.note_path(settings, "gate")
    assert path == tmp_path / "log" / "pfx.gate.exit"
    exits.write(path, ValueError("boom\non two lines"))
    assert exits.take(path) == "ValueError: boom on two lines"
    assert exits.take(path) == "" and not path.exists()  # the next run starts without it


def test_a_long_message_is_cut() -> None:
    assert len(exits.describe(RuntimeError("x" * 5000))) == exits.MAX_NOTE


def test_an_unwritable_note_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    exits.write(blocker / "sub" / "x.exit", ValueError("boom"))  # parent is a file: OSError inside
    assert "could not leave the exit note" in caplog.text


def test_watch_mode_shows_the_note_as_it_stands_with_its_age(settings: Settings) -> None:
    peek = exits.watched(settings)
    assert peek("persister") == ""
    exits.write(exits.note_path(settings, "persister"), OSError("disk gone"))
    shown = peek("persister")
    assert shown.startswith("last exit: OSError: disk gone (") and shown.endswith("s ago)")
    assert exits.note_path(settings, "persister").exists()  # shown, not taken: systemd owns the process
