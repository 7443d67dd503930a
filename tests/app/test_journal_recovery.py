"""No lost work: a session killed with SIGKILL while editing comes back with every edit and its undo stack."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from radlabel.app.journal import Journal
from radlabel.app.session import JOURNAL_FILE, SEGMENTATION_FILE, Session
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.errors import CaseError
from radlabel.core.volume import Volume

from .conftest import CASE_SHAPE

REPO = Path(__file__).resolve().parents[2]

# The child's edits, also run by the test on a plain numpy label map (the independent expectation).
PLAN = textwrap.dedent(
    """
    def plan(n):
        '''Step n (from 1): ("undo",), ("redo",) or ("edit", segment, start, size, mode).'''
        if n % 10 in (7, 9):
            return ("undo",)
        if n % 10 == 8:
            return ("redo",)
        start = ((n * 3) % 9, (n * 5) % 12, (n * 7) % 16)
        return ("edit", 1 + n % 2, start, (3, 4, 4), "remove" if n % 6 == 0 else "add")
    """
)
namespace: dict[str, Any] = {}
exec(PLAN, namespace)
plan = namespace["plan"]

CHILD = PLAN + textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from radlabel.app.session import Session
    from radlabel.core.edit.request import Region

    session = Session.open(sys.argv[1])
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        step = plan(n)
        if step[0] == "undo":
            session.undo()
        elif step[0] == "redo":
            session.redo()
        else:
            _, segment, start, size, mode = step
            session.edit("paint", {"n": n}, Region(start, np.ones(size, dtype=bool)), mode, segment)
        print(n, flush=True)  # step n is complete: edit() returned
        time.sleep(0.002)
    """
)


class Expected:
    """The plan on a numpy label map with whole-map snapshots for undo (Overwrite.ALL, editable everywhere)."""

    def __init__(self) -> None:
        self.labels = np.zeros(CASE_SHAPE, dtype=np.uint16)
        self.undo: list[tuple[np.ndarray, np.ndarray]] = []  # (before, after)
        self.redo: list[tuple[np.ndarray, np.ndarray]] = []

    def step(self, n: int) -> None:
        kind = plan(n)
        if kind[0] == "undo":
            if self.undo:
                before, after = self.undo.pop()
                self.redo.append((before, after))
                self.labels = before.copy()
        elif kind[0] == "redo":
            if self.redo:
                before, after = self.redo.pop()
                self.undo.append((before, after))
                self.labels = after.copy()
        else:
            _, segment, start, size, mode = kind
            box = tuple(slice(s, s + d) for s, d in zip(start, size, strict=True))
            before = self.labels.copy()
            if mode == "add":
                self.labels[box] = segment
            else:
                view = self.labels[box]
                view[view == segment] = 0
            if not np.array_equal(before, self.labels):  # a no-op edit is no step
                self.undo.append((before, self.labels.copy()))
                self.redo.clear()


def make_case(tmp_path: Path, ct_source: tuple[Volume, Path]) -> Path:
    volume, source = ct_source
    case = tmp_path / "case"
    with Session.create(case, volume, source) as session:
        session.add_segment("Liver")
        session.add_segment("Tumour")
        session.save()
    return case


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only")
def test_sigkill_while_editing_loses_no_reported_edit(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    case = make_case(tmp_path, ct_source)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen(
        [sys.executable, "-u", str(script), str(case)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    reported: list[tuple[int, float]] = []  # (step, when the test read the line)
    try:
        assert child.stdout is not None
        first = child.stdout.readline().strip()
        assert first == "ready", f"child did not start: {first!r} {child.stderr.read() if child.stderr else ''}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, f"the child stopped: {child.stderr.read() if child.stderr else ''}"
            reported.append((int(line), time.monotonic()))
            if len(reported) >= 40 and reported[-1][1] - reported[0][1] >= 1.5:
                break
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream:
                stream.close()
    assert child.returncode == -signal.SIGKILL
    must_have = max(n for n, when in reported if when < killed_at - 1.0)
    assert must_have >= 10, f"too few steps before the kill window ({must_have})"

    # The child may have finished one more step than it printed, or be killed inside one.
    session = Session.open(case)
    try:
        assert session.warnings == []
        expected = Expected()
        matches = []
        for n in range(1, reported[-1][0] + 2):
            expected.step(n)
            if n >= must_have and np.array_equal(session.segmentation.label_map(), expected.labels):
                matches.append((n, len(expected.undo), len(expected.redo)))
        stack = (session.undo_stack.undo_count - 2, session.undo_stack.redo_count)  # less the two added segments
        assert any(stack == (undo, redo) for _, undo, redo in matches), (
            f"reopened state matches no step >= {must_have} with this undo stack: {matches[:5]} vs {stack}"
        )
        # Rebuild the model at the matched step and walk the whole undo stack back, then forward again.
        step = next(n for n, undo, redo in matches if (undo, redo) == stack)
        expected = Expected()
        for n in range(1, step + 1):
            expected.step(n)
        final = session.segmentation.label_map().copy()
        for before, _ in reversed(expected.undo):
            session.undo()
            assert np.array_equal(session.segmentation.label_map(), before)
        assert not session.segmentation.label_map().any()
        assert session.undo_stack.undo_count == 2  # what is left: adding the two segments
        for _, after in expected.undo:
            session.redo()
            assert np.array_equal(session.segmentation.label_map(), after)
        assert np.array_equal(session.segmentation.label_map(), final)
    finally:
        session.close()


def crash_copy(session: Session, target: Path) -> Path:
    """The case folder as a crash would leave it: the files on disk while the session is still open."""
    target.mkdir()
    for name in (SEGMENTATION_FILE, "case.json", JOURNAL_FILE, JOURNAL_FILE + "-wal"):
        if (session.case_dir / name).exists():
            shutil.copy2(session.case_dir / name, target / name)
    return target


def paint_steps(session: Session, count: int, first: int = 0) -> list[np.ndarray]:
    """``count`` effective paints of segment 1 (boxes ``first``, ``first + 1``, ... along the diagonal)."""
    labels = []
    for n in range(first, first + count):
        diff = session.edit("paint", {"n": n}, Region((n, n, n), np.ones((2, 2, 2), bool)), EditMode.ADD, 1)
        assert diff is not None
        labels.append(session.segmentation.label_map().copy())
    return labels


def test_a_torn_last_record_is_ignored_with_a_warning(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    case = make_case(tmp_path, ct_source)
    with Session.open(case) as session:
        labels = paint_steps(session, 5)
    db = sqlite3.connect(case / JOURNAL_FILE)
    (seq, blob) = db.execute("SELECT seq, diff FROM records WHERE op = 'do' ORDER BY seq DESC LIMIT 1").fetchone()
    db.execute("UPDATE records SET diff = ? WHERE seq = ?", (blob[: len(blob) // 2], seq))
    db.commit()
    db.close()
    with Session.open(case) as session:
        assert len(session.warnings) == 2 and "incomplete" in session.warnings[0]
        assert np.array_equal(session.segmentation.label_map(), labels[-2])
        assert session.undo_stack.undo_count == 2 + 4
        assert list(case.glob(JOURNAL_FILE + ".damaged-*")), "the damaged journal is kept aside"
        session.edit("paint", {}, Region((0, 0, 0), np.ones((2, 2, 2), bool)), EditMode.ADD, 2)
        after = session.segmentation.label_map().copy()
    with Session.open(case) as session:  # the journal goes on cleanly after the dropped record
        assert session.warnings == []
        assert np.array_equal(session.segmentation.label_map(), after)


def test_a_wal_cut_off_mid_write_recovers_the_complete_steps(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    case = make_case(tmp_path, ct_source)
    with Session.open(case) as session:
        labels = paint_steps(session, 6)
        crashed = crash_copy(session, tmp_path / "crashed")
    wal = crashed / (JOURNAL_FILE + "-wal")
    size = wal.stat().st_size
    assert size > 0, "the steps are in the write-ahead log, not yet checkpointed"
    with open(wal, "r+b") as handle:
        handle.truncate(size - 100)  # the last commit frame is cut in half
    with Session.open(crashed) as session:
        assert np.array_equal(session.segmentation.label_map(), labels[-2])
        assert session.undo_stack.undo_count == 2 + 5
        session.undo()
        assert np.array_equal(session.segmentation.label_map(), labels[-3])


def test_recovery_replays_on_top_of_the_saved_segmentation(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    case = make_case(tmp_path, ct_source)
    with Session.open(case) as session:
        labels = paint_steps(session, 3)
        session.save()
        saved = (case / SEGMENTATION_FILE).read_bytes()
        labels += paint_steps(session, 3, first=3)
        session.undo()
        session.undo()
        session.redo()
        assert (case / SEGMENTATION_FILE).read_bytes() == saved, "journalling never touches the saved file"
        now = session.segmentation.label_map().copy()
        crashed = crash_copy(session, tmp_path / "crashed")
    with Session.open(crashed) as session:
        assert session.recovered_steps == 6  # three paints, two undos, one redo
        assert np.array_equal(session.segmentation.label_map(), now)
        assert session.undo_stack.redo_count == 1 and session.undo_stack.undo_count == 2 + 5
        for expected in reversed(labels[:5]):  # now: after paint 5 (paint 6 undone)
            assert np.array_equal(session.segmentation.label_map(), expected)
            session.undo()
        assert not session.segmentation.label_map().any()


def test_a_damaged_record_in_the_middle_ends_the_journal_there(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    case = make_case(tmp_path, ct_source)
    with Session.open(case) as session:
        labels = paint_steps(session, 6)
    db = sqlite3.connect(case / JOURNAL_FILE)
    seqs = [row[0] for row in db.execute("SELECT seq FROM records WHERE op = 'do' ORDER BY seq")]
    db.execute("UPDATE records SET op = 'redo' WHERE seq = ?", (seqs[-3],))  # crc no longer matches
    db.commit()
    db.close()
    with Session.open(case) as session:
        assert "damaged" in session.warnings[0] and "2 record(s) after it" in session.warnings[0]
        assert np.array_equal(session.segmentation.label_map(), labels[-4])


def test_the_journal_survives_a_lost_journal_file(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    """Without its journal a case opens at the saved state; new steps are numbered after it."""
    case = make_case(tmp_path, ct_source)
    with Session.open(case) as session:
        paint_steps(session, 2)
        session.save()
        saved = session.segmentation.label_map().copy()
    (case / JOURNAL_FILE).unlink()
    with Session.open(case) as session:
        assert np.array_equal(session.segmentation.label_map(), saved) and session.undo_stack.undo_count == 0
        session.edit("paint", {}, Region((9, 0, 0), np.ones((2, 2, 2), bool)), EditMode.ADD, 2)
        assert session.journal.last_seq > 5
        labels = session.segmentation.label_map().copy()
    with Session.open(case) as session:
        assert np.array_equal(session.segmentation.label_map(), labels)


def test_a_journal_from_another_case_is_refused(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    first = make_case(tmp_path / "a", ct_source)
    second = make_case(tmp_path / "b", ct_source)
    shutil.copy(first / JOURNAL_FILE, second / JOURNAL_FILE)
    with pytest.raises(CaseError, match="belongs to another case"):
        Session.open(second)
    with pytest.raises(CaseError, match="belongs to another case"):
        Journal(first / JOURNAL_FILE, "another-case-id")
