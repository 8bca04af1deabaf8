"""``haven backup`` while a real server writes notes, ``haven restore`` into a new folder,
and a real server on the restored folder that reads every acknowledged note."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time

import pytest
import requests

from therapy.datadir import prepare
from web.app import migration_sets

from .conftest import ROOT, free_port, start_live_server

pytestmark = pytest.mark.slow


def login(base: str, username: str, password: str) -> requests.Session:
    s = requests.Session()
    s.get(base + "/healthz")
    r = s.post(base + "/api/login", json={"username": username, "password": password},
               headers={"X-CSRF-Token": s.cookies["haven_csrf"]})
    assert r.status_code == 200, r.text
    return s


def post(s: requests.Session, base: str, path: str, body: dict) -> requests.Response:
    return s.post(base + path, json=body, headers={"X-CSRF-Token": s.cookies["haven_csrf"]})


def haven(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "web.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def serve(data_dir, log_path) -> tuple[subprocess.Popen, str]:
    """``haven serve`` on an existing data folder, as an operator starts it after a restore."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "serve", "--data-dir", str(data_dir), "--port",
             str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(open(log_path).read())
        try:
            requests.get(base + "/healthz", timeout=1)
            return proc, base
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


class NoteWriter(threading.Thread):
    """Writes notes one after the other; remembers each acknowledged one and when."""

    def __init__(self, base, session, patient_id):
        super().__init__(daemon=True)
        self.base, self.session, self.pid = base, session, patient_id
        self.acked: list[tuple[str, str, float]] = []  # (note id, text, acknowledged at)
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            text = f"note {i} written during the backup test: {os.urandom(6).hex()}"
            r = post(self.session, self.base, f"/api/patients/{self.pid}/notes", {
                "kind": "progress", "template": "free", "sections": {"text": text}})
            if r.status_code == 201:
                self.acked.append((r.json()["note"]["id"], text, time.monotonic()))
            else:
                self.errors.append(f"{r.status_code} {r.text[:200]}")
            i += 1


def test_backup_while_writing_then_restore_and_read_every_acknowledged_note(tmp_path):
    (tmp_path / "live").mkdir()
    live = start_live_server(tmp_path / "live")
    try:
        base = live.base_url
        therapist = login(base, "therapist", live.logins["therapist"])
        patients = therapist.get(base + "/api/practice/patients").json()["patients"]
        pid = next(p["id"] for p in patients if p["username"] == "patient")
        writer = NoteWriter(base, therapist, pid)
        writer.start()
        while len(writer.acked) < 20:
            time.sleep(0.05)
        target = tmp_path / "backups" / "haven-backup.db"
        target.parent.mkdir()
        started = time.monotonic()
        made = haven("backup", "--data-dir", str(live.data_dir), "--to", str(target))
        finished = time.monotonic()
        assert made.returncode == 0, made.stderr
        assert "back up the key file" in made.stdout
        while sum(1 for a in writer.acked if a[2] > finished) < 5:  # writes go on after it
            time.sleep(0.05)
        writer.stop.set()
        writer.join(30)
        assert writer.errors == []
        # The operator keeps the key file elsewhere.
        key_copy = tmp_path / "key-safe" / "master.key"
        key_copy.parent.mkdir(mode=0o700)
        shutil.copyfile(live.data_dir / "master.key", key_copy)
        os.chmod(key_copy, 0o600)
    finally:
        live.process.terminate()
        live.process.wait(timeout=10)

    # The backup holds nothing of the key, and only its owner can read it.
    raw = target.read_bytes()
    ring = json.loads(key_copy.read_text())
    for encoded in ring["keys"].values():
        key = base64.b64decode(encoded)
        assert key not in raw and encoded.encode() not in raw and key.hex().encode() not in raw
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    # A key file of other data is refused before anything is written.
    other = prepare(tmp_path / "other", migration_sets())
    wrong = haven("restore", "--from", str(target), "--data-dir", str(tmp_path / "wrong"),
                  "--key-file", str(other.key_path))
    assert wrong.returncode == 2 and "does not belong to this backup" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "wrong").exists()

    restored_dir = tmp_path / "restored"
    done = haven("restore", "--from", str(target), "--data-dir", str(restored_dir),
                 "--key-file", str(key_copy))
    assert done.returncode == 0, done.stderr
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in restored_dir.iterdir()
            if p.name in ("haven.db", "master.key")} == {"haven.db": 0o600, "master.key": 0o600}
    # Restoring onto a folder that holds data is refused too.
    again = haven("restore", "--from", str(target), "--data-dir", str(restored_dir),
                  "--key-file", str(key_copy))
    assert again.returncode == 2 and "not empty" in again.stderr

    proc, base2 = serve(restored_dir, tmp_path / "restored.log")
    try:
        assert requests.get(base2 + "/healthz").json() == {"status": "ok"}
        therapist = login(base2, "therapist", live.logins["therapist"])
        before = [a for a in writer.acked if a[2] < started]
        assert len(before) >= 20
        for note_id, text, _ in before:  # every note acknowledged before the backup began
            r = therapist.get(f"{base2}/api/notes/{note_id}")
            assert r.status_code == 200, r.text
            assert r.json()["note"]["sections"][0]["text"] == text
        listed = therapist.get(f"{base2}/api/patients/{pid}/notes").json()["notes"]
        texts = {note_id: text for note_id, text, _ in writer.acked}
        in_backup = [n["id"] for n in listed if n["id"] in texts]
        assert len(in_backup) >= len(before)
        for note_id in in_backup:  # and every note the snapshot caught is whole
            r = therapist.get(f"{base2}/api/notes/{note_id}")
            assert r.json()["note"]["sections"][0]["text"] == texts[note_id]
        # Notes acknowledged after the backup finished are not in it (it is a snapshot).
        after = {a[0] for a in writer.acked if a[2] > finished}
        assert after and not after & set(in_backup)
        # And the restored clinic works on: a new note is sealed and read back.
        r = post(therapist, base2, f"/api/patients/{pid}/notes", {
            "kind": "progress", "template": "free", "sections": {"text": "after restore"}})
        assert r.status_code == 201
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_backup_refuses_to_overwrite_and_restore_refuses_a_non_backup(tmp_path):
    data = prepare(tmp_path / "data", migration_sets())
    target = tmp_path / "b.db"
    assert haven("backup", "--data-dir", str(data.path), "--to", str(target)).returncode == 0
    twice = haven("backup", "--data-dir", str(data.path), "--to", str(target))
    assert twice.returncode == 2 and "exists" in twice.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    bad = haven("restore", "--from", str(junk), "--data-dir", str(tmp_path / "n"),
                "--key-file", str(data.key_path))
    assert bad.returncode == 2 and "not an intact Haven backup" in bad.stderr
    assert not (tmp_path / "n").exists()
    missing = haven("backup", "--data-dir", str(tmp_path / "nowhere"), "--to", str(tmp_path / "x"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
