"""Fault 8 of issue 11: the database, its WAL and its SHM file are owner-only (0600), like
the key file: when Haven creates them, when they already exist with looser modes, and
whatever the umask."""

from __future__ import annotations

import os
import stat

import pytest

from therapy.datadir import prepare
from therapy.storage import Store, open_database
from web.app import migration_sets

from .conftest import start_live_server


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def db_files(data_dir):
    return [data_dir / n for n in ("haven.db", "haven.db-wal", "haven.db-shm")]


@pytest.fixture
def loose_umask():
    old = os.umask(0)
    yield
    os.umask(old)


async def test_a_new_data_folder_is_owner_only_even_with_umask_0(tmp_path, loose_umask):
    data = prepare(tmp_path / "data", migration_sets())
    store = Store(data.db_path)
    try:
        await store.write(lambda db: db.execute(
            "INSERT INTO meta (key, value) VALUES ('probe', 'x')"))
        assert all(p.exists() for p in db_files(data.path))
        assert {p.name: mode(p) for p in db_files(data.path)} == {
            p.name: 0o600 for p in db_files(data.path)}
        assert mode(data.key_path) == 0o600
    finally:
        store.close()


def test_existing_loose_files_are_tightened_when_opened(tmp_path):
    data = prepare(tmp_path / "data", migration_sets())
    db = open_database(data.db_path)  # hold it open so the WAL and SHM files stay
    try:
        db.execute("INSERT INTO meta (key, value) VALUES ('probe', 'x')")
        for p in db_files(data.path):
            os.chmod(p, 0o644)
        again = open_database(data.db_path)
        again.close()
        assert [mode(p) for p in db_files(data.path)] == [0o600] * 3
    finally:
        db.close()
    os.chmod(data.db_path, 0o664)
    prepare(data.path, migration_sets())  # a restart tightens it too
    assert mode(data.db_path) == 0o600


def test_a_running_server_keeps_every_file_in_its_folder_owner_only(tmp_path):
    server = start_live_server(tmp_path)
    try:
        import urllib.request
        urllib.request.urlopen(server.base_url + "/healthz").read()
        files = sorted(server.data_dir.iterdir())
        assert {"haven.db", "haven.db-wal", "haven.db-shm", "master.key"} <= {
            p.name for p in files}
        loose = {p.name: oct(mode(p)) for p in files if mode(p) & 0o077}
        assert loose == {}, loose
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)
