"""Fault 2 of issue 11: a running server must never adopt a foreign key file.

Swapping another data folder's ``master.key`` in under a running server used to make reads
fail with 500 and seal new notes under the wrong key. Now the reload is refused: the server
keeps its key, logs one error, and /healthz says degraded until the right file is back.
"""

from __future__ import annotations

import logging
import os
import shutil

from therapy.datadir import prepare
from therapy.keyfile import MasterKeyring, write_keyfile
from web import appkeys
from web.app import migration_sets

from .test_practice_http import clinic, json_ok, sign_consents  # noqa: F401


def swap_in(path, source) -> None:
    """Replace the key file the way an operator's copy would (a new file, mode 0600)."""
    tmp = path.with_name("swap.tmp")
    shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


async def ready(clinic, tmp_path):  # noqa: F811
    """The therapist, the patient's id, the live key file and a copy of it as it was."""
    t, p, pid = clinic["t"], clinic["p"], clinic["pid"]
    await sign_consents(p)
    key_path = t.client.server.app[appkeys.DATA_DIR].key_path
    original = tmp_path / "original.key"
    shutil.copyfile(key_path, original)
    return t, pid, key_path, original


async def write_note(t, pid, text) -> str:
    made = await json_ok(await t.post(f"/api/patients/{pid}/notes", {
        "kind": "progress", "template": "free", "sections": {"text": text}}), 201)
    return made["note"]["id"]


async def note_text(client, note_id) -> str:
    note = (await json_ok(await client.get(f"/api/notes/{note_id}")))["note"]
    return note["sections"][0]["text"]


async def test_foreign_key_file_is_refused_and_nothing_is_sealed_under_it(
        clinic, tmp_path, caplog):  # noqa: F811
    t, pid, key_path, original = await ready(clinic, tmp_path)
    before = await write_note(t, pid, "before the swap")
    assert (await json_ok(await t.get("/healthz")))["status"] == "ok"

    foreign = prepare(tmp_path / "other-clinic", migration_sets())
    caplog.set_level(logging.INFO)
    swap_in(key_path, foreign.key_path)

    # Reads go on with the key the server has; the health check says what is wrong.
    assert await note_text(t, before) == "before the swap"
    health = await json_ok(await t.get("/healthz"))
    assert health["status"] == "degraded"
    assert health["problems"][0]["check"] == "key_file"
    assert str(key_path) not in str(health)  # a public endpoint: no paths
    # A new patient's first note makes a new patient key: it must be wrapped under this
    # database's master key, not the foreign one.
    during = await write_note(t, pid, "during the swap")
    for _ in range(5):
        assert await note_text(t, during) == "during the swap"
    refused = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(refused) == 1, [r.getMessage() for r in refused]
    assert refused[0].getMessage() == "keyring.reload_refused"
    assert "does not belong to this database" in refused[0].haven_fields["reason"]

    # The right key comes back: healthy again, and every note opens.
    swap_in(key_path, original)
    assert (await json_ok(await t.get("/healthz")))["status"] == "ok"
    assert await note_text(t, before) == "before the swap"
    assert await note_text(t, during) == "during the swap"
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


async def test_patient_key_made_during_the_swap_is_under_the_right_key(
        clinic, tmp_path):  # noqa: F811
    """The fault's second half: a note for a patient with no key yet, written while the
    foreign file was in place, stays readable after the right key is back."""
    t, pid, key_path, original = await ready(clinic, tmp_path)
    app = t.client.server.app
    foreign = tmp_path / "foreign.key"
    write_keyfile(foreign, MasterKeyring.generate())
    swap_in(key_path, foreign)
    made = await write_note(t, pid, "first note")
    swap_in(key_path, original)
    assert await note_text(t, made) == "first note"
    # And a restart on the data folder (which checks every wrapped key) still works.
    prepare(app[appkeys.DATA_DIR].path, migration_sets())


async def test_broken_or_missing_key_file_keeps_the_key_and_reports_degraded(
        clinic, tmp_path):  # noqa: F811
    t, pid, key_path, original = await ready(clinic, tmp_path)
    note = await write_note(t, pid, "kept")
    for damage in ("missing", "not json", "loose mode"):
        if damage == "missing":
            key_path.unlink()
        elif damage == "not json":
            key_path.write_text("{oops")
            os.chmod(key_path, 0o600)
        else:
            shutil.copyfile(original, key_path)
            os.chmod(key_path, 0o644)
        assert (await json_ok(await t.get("/healthz")))["status"] == "degraded", damage
        assert await note_text(t, note) == "kept"
    swap_in(key_path, original)
    assert (await json_ok(await t.get("/healthz")))["status"] == "ok"
