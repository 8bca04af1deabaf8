"""Start-up checks on the data folder: migrations, the key file, and refusals."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from therapy import schema
from therapy.datadir import DataDirError, prepare
from therapy.keyfile import MasterKeyring, write_keyfile
from therapy.storage import apply_migrations, open_database

from .conftest import ROOT

SETS = [schema.migrations]


def test_first_start_creates_database_and_0600_key(tmp_path):
    d = prepare(tmp_path / "data", SETS)
    assert d.db_path.exists()
    assert (d.key_path.stat().st_mode & 0o777) == 0o600
    assert (d.path.stat().st_mode & 0o777) == 0o700
    db = open_database(d.db_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = {r["key"]: r["value"] for r in db.table("meta").rows}
    assert meta["master_key_id"] == d.keyring.current
    # the key itself is not in the database
    assert d.keyring.current_key.hex() not in json.dumps(meta)
    db.close()
    raw = d.db_path.read_bytes() + (d.path / "haven.db-wal").read_bytes() if (
        d.path / "haven.db-wal").exists() else d.db_path.read_bytes()
    assert d.keyring.current_key not in raw


def test_migrations_are_safe_to_run_twice(tmp_path):
    d = prepare(tmp_path / "data", SETS)
    db = open_database(d.db_path)
    db.table("meta").insert({"key": "marker", "value": "kept"})
    tables = set(db.table_names())
    assert apply_migrations(db, SETS) == []  # nothing pending the second time
    assert set(db.table_names()) == tables
    assert db.table("meta").get("marker")["value"] == "kept"
    db.close()
    again = prepare(tmp_path / "data", SETS)  # a full restart too
    assert again.keyring.current == d.keyring.current


def test_partial_migration_rolls_back(tmp_path):
    from sqlite_utils import Migrations

    broken = Migrations("broken")

    @broken()
    def m001(db):
        db.table("half").create({"id": int}, pk="id")
        raise RuntimeError("boom")

    db = open_database(tmp_path / "x.db")
    with pytest.raises(RuntimeError):
        apply_migrations(db, [broken])
    assert "half" not in db.table_names()
    assert [m.name for m in broken.pending(db)] == ["m001"]


def test_refuses_loose_key_permissions(tmp_path):
    d = prepare(tmp_path / "data", SETS)
    os.chmod(d.key_path, 0o644)
    with pytest.raises(DataDirError, match="loose permissions"):
        prepare(tmp_path / "data", SETS)


def test_refuses_missing_key_for_existing_database(tmp_path):
    d = prepare(tmp_path / "data", SETS)
    d.key_path.unlink()
    with pytest.raises(DataDirError, match="missing"):
        prepare(tmp_path / "data", SETS)
    assert not d.key_path.exists()  # and it did not make a new one


def test_refuses_a_key_file_of_other_data(tmp_path):
    d = prepare(tmp_path / "data", SETS)
    write_keyfile(d.key_path, MasterKeyring.generate())
    with pytest.raises(DataDirError, match="does not belong"):
        prepare(tmp_path / "data", SETS)


def test_refuses_same_id_but_different_key(tmp_path):
    d = prepare(tmp_path / "data", SETS)
    forged = MasterKeyring(current=d.keyring.current, keys={d.keyring.current: b"\x01" * 32})
    write_keyfile(d.key_path, forged)
    with pytest.raises(DataDirError, match="does not belong"):
        prepare(tmp_path / "data", SETS)


@pytest.mark.parametrize("content", [b"", b"not json", b'{"format": "other"}',
                                     b'{"format": "haven-master-key/1", "current": "a", "keys": {"a": "AAA"}}',
                                     b"\xff\xfe\x00"])
def test_refuses_unreadable_key_file(tmp_path, content):
    d = prepare(tmp_path / "data", SETS)
    d.key_path.write_bytes(content)
    os.chmod(d.key_path, 0o600)
    with pytest.raises(DataDirError):
        prepare(tmp_path / "data", SETS)


def test_audit_log_is_append_only(tmp_path):
    d = prepare(tmp_path / "data", SETS)
    db = open_database(d.db_path)
    assert db.table("audit_log").count >= 1
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit_log SET action = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_log")
    db.close()


def run_haven(*args, timeout=30, input_=None):
    return subprocess.run([sys.executable, "-m", "web.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, input=input_,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_refuses_to_start_with_one_clear_line(tmp_path):
    d = prepare(tmp_path / "data", SETS)
    os.chmod(d.key_path, 0o640)
    r = run_haven("serve", "--data-dir", str(d.path), "--port", "1")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("haven: error: refusing to start")
    assert "chmod 600" in lines[0]


def test_cli_user_add_creates_an_admin(tmp_path):
    r = run_haven("user", "add", "--data-dir", str(tmp_path / "d"), "boss", "--role", "admin",
                  "--password-stdin", input_="a long admin password\n")
    assert r.returncode == 0, r.stderr
    db = open_database(tmp_path / "d" / "haven.db")
    row = db.table("users").rows_where("username = 'boss'").__next__()
    db.close()
    assert row["role"] == "admin" and "a long admin password" not in row["password_hash"]


def test_cli_user_add_rejects_a_short_password(tmp_path):
    r = run_haven("user", "add", "--data-dir", str(tmp_path / "d"), "boss", "--password-stdin",
                  input_="short\n")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "haven: error: password must be 10 to 256 characters long"]
