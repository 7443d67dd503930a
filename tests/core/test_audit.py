"""The audit log detects every direct change to its SQLite file: changed, removed, reordered records."""

from __future__ import annotations

import sqlite3
from itertools import pairwise
from pathlib import Path

import pytest

from radlabel.core.audit import AuditLog


def make_log(tmp_path: Path, count: int = 6) -> Path:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path, user="dr.house") as log:
        for n in range(count):
            log.append("edit", {"tool": "paint", "segment": "tumour", "voxels": 100 + n})
    return path


def tamper(path: Path, *statements: str) -> None:
    db = sqlite3.connect(str(path))
    db.execute("DROP TRIGGER IF EXISTS audit_no_update")
    db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def test_untouched_log_verifies_and_keeps_order_user_and_payload(tmp_path: Path) -> None:
    path = make_log(tmp_path)
    with AuditLog(path) as log:
        result = log.verify()
        records = list(log.records())
    assert result.ok and result.count == 6 and result.head_hash == records[-1].hash
    assert [r.seq for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[0].user == "dr.house" and records[3].payload["voxels"] == 103
    assert records[0].time_utc.endswith("Z")
    assert all(b.prev_hash == a.hash for a, b in pairwise(records))


def test_the_log_refuses_updates_and_deletes_through_sqlite(tmp_path: Path) -> None:
    path = make_log(tmp_path)
    db = sqlite3.connect(str(path))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET user = 'someone' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit WHERE seq = 2")
    db.close()


@pytest.mark.parametrize(
    ("statements", "first_bad", "words"),
    [
        (["UPDATE audit SET payload = replace(payload, '103', '999') WHERE seq = 4"], 4, "was changed"),
        (["UPDATE audit SET user = 'someone.else' WHERE seq = 2"], 2, "was changed"),
        (["DELETE FROM audit WHERE seq = 3"], 3, "missing"),
        (["DELETE FROM audit WHERE seq = 6"], 6, "at the end"),
        (
            [
                "UPDATE audit SET seq = -1 WHERE seq = 2",
                "UPDATE audit SET seq = 2 WHERE seq = 3",
                "UPDATE audit SET seq = 3 WHERE seq = -1",
            ],
            2,
            "",
        ),
    ],
    ids=["changed-payload", "changed-user", "removed-middle", "removed-last", "swapped"],
)
def test_verify_names_the_first_bad_record(tmp_path: Path, statements: list[str], first_bad: int, words: str) -> None:
    path = make_log(tmp_path)
    tamper(path, *statements)
    with AuditLog(path) as log:
        result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == first_bad
    assert words in " ".join(result.problems)


def test_appending_after_reopen_continues_the_chain(tmp_path: Path) -> None:
    path = make_log(tmp_path, count=2)
    with AuditLog(path, user="b") as log:
        record = log.append("export", {"file": "x.dcm"})
        assert record.seq == 3 and log.verify().ok
