"""The tamper-evident audit trail: an append-only, hash-chained log in an embedded SQLite database.

Each record holds the hash of the previous one, and its own hash covers its sequence number, time, user,
action and payload (canonical JSON). `verify` recomputes the chain and names the first record that was
changed, removed or reordered. A `head` row stores the count and last hash, so removing records from the
end is caught too. This makes tampering *evident*, not impossible: someone who rewrites the whole chain and
the head can hide it, which is why exports carry the head hash (compare it with the log later) and sites
that need more can ship the head hash to a separate store.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from radlabel.core.errors import InputError

AUDIT_FILE_NAME = "audit.sqlite"
GENESIS_HASH = "0" * 64
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL,
    time_utc TEXT NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL,
    hash TEXT NOT NULL,
    schema_version INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def current_user() -> str:
    """The OS login name, the default identity when site configuration names none."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers/services
        return "unknown"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(seq: int, record_id: str, time_utc: str, user: str, action: str, payload: str, prev: str) -> str:
    text = canonical_json([seq, record_id, time_utc, user, action, payload, prev])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    record_id: str
    time_utc: str
    user: str
    action: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.record_id,
            "time_utc": self.time_utc,
            "user": self.user,
            "action": self.action,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass
class VerifyResult:
    ok: bool
    count: int
    head_hash: str
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)


class AuditLog:
    """Append-only hash-chained log stored in ``path`` (created when missing)."""

    def __init__(self, path: str | Path, user: str | None = None) -> None:
        self.path = Path(path)
        self.user = user or current_user()
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # An audit record must survive a crash as surely as the edit it describes.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"the audit database cannot be opened ({exc})", self.path) from exc

    @classmethod
    def for_case(cls, case_dir: str | Path, user: str | None = None) -> AuditLog:
        return cls(Path(case_dir) / AUDIT_FILE_NAME, user)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def head(self) -> tuple[int, str]:
        row = self._db.execute("SELECT count, hash FROM head WHERE id = 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    def append(self, action: str, payload: dict[str, Any], user: str | None = None) -> AuditRecord:
        """Add one record; the write is one transaction with the head update."""
        payload_text = canonical_json(payload)
        time_utc = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        who = user or self.user
        record_id = str(uuid.uuid4())
        self._db.execute("BEGIN IMMEDIATE")
        try:
            last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS_HASH)
            digest = record_hash(seq, record_id, time_utc, who, action, payload_text, prev)
            self._db.execute(
                "INSERT INTO audit (seq, record_id, time_utc, user, action, payload, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, record_id, time_utc, who, action, payload_text, prev, digest),
            )
            self._db.execute(
                "INSERT INTO head (id, count, hash, schema_version) VALUES (1, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET count = excluded.count, hash = excluded.hash",
                (seq, digest, SCHEMA_VERSION),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return AuditRecord(seq, record_id, time_utc, who, action, json.loads(payload_text), prev, digest)

    def records(self) -> Iterator[AuditRecord]:
        """Records in their stored order (rowid), which is what `verify` checks against the chain."""
        cursor = self._db.execute(
            "SELECT seq, record_id, time_utc, user, action, payload, prev_hash, hash FROM audit ORDER BY rowid"
        )
        for seq, record_id, time_utc, user, action, payload, prev, digest in cursor:
            try:
                data = json.loads(payload)
            except json.JSONDecodeError:
                data = {"unparseable_payload": payload}
            yield AuditRecord(
                int(seq), str(record_id), str(time_utc), str(user), str(action), data, str(prev), str(digest)
            )

    def verify(self) -> VerifyResult:
        """Recompute the chain; report the first record that was changed, removed or reordered."""
        rows = self._db.execute(
            "SELECT seq, record_id, time_utc, user, action, payload, prev_hash, hash FROM audit ORDER BY seq"
        ).fetchall()
        problems: list[str] = []
        first_bad: int | None = None
        previous = GENESIS_HASH
        expected_seq = 1
        for seq, record_id, time_utc, user, action, payload, prev, digest in rows:
            recomputed = record_hash(int(seq), record_id, time_utc, user, action, payload, prev)
            problem = None
            if int(seq) != expected_seq:
                problem = f"record {expected_seq} is missing (next stored record is {seq})"
            elif recomputed != digest:
                problem = f"record {seq} ({action}, {time_utc}) was changed: its content does not match its hash"
            elif prev != previous:
                problem = f"record {seq} ({action}) does not follow record {seq - 1}: records were removed or reordered"
            if problem:
                problems.append(problem)
                first_bad = first_bad if first_bad is not None else min(int(seq), expected_seq)
                break
            previous = digest
            expected_seq += 1
        count, head_hash = self.head()
        if not problems and (count != len(rows) or head_hash != previous):
            problems.append(
                f"the log ends at record {len(rows)} but its head says {count} records: records at the end "
                "were removed, or the head was changed"
            )
            first_bad = len(rows) + 1 if count > len(rows) else count + 1
        stored_order = [r[0] for r in self._db.execute("SELECT seq FROM audit ORDER BY rowid")]
        if not problems and stored_order != sorted(stored_order):
            swapped = next(s for s, t in zip(stored_order, sorted(stored_order), strict=True) if s != t)
            problems.append(f"records were reordered in the database (record {swapped} is out of place)")
            first_bad = swapped
        return VerifyResult(not problems, len(rows), previous, first_bad, problems)
