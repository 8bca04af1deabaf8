"""Fault 6 of issue 11: the OpenAPI document says what the server does.

Integer path parameters are declared integers, 201/403 (CSRF)/409 are documented where the
server sends them, unknown body fields are refused by the schema as by the server, and a
405 keeps its ``Allow`` header. tests/test_contract_fuzz.py fuzzes the whole document; these
are the fault's cases one by one.
"""

from __future__ import annotations

import re

from therapy.accounts import Role
from web import appkeys

from .test_practice_http import clinic, error_of, json_ok  # noqa: F401

INT_PARAMS = {"appointment_id", "occurrence", "patient_id", "user_id", "group_id", "member_id",
              "alert_id", "report_id", "group_note_id", "care_alert_id"}  # safety (web.safety_api)


async def document(client) -> dict:
    return await json_ok(await client.get("/api/openapi.json"))


def operations(doc):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


async def test_path_parameters_have_the_types_the_server_routes(client):
    doc = await document(client)
    seen = set()
    for _, path, op in operations(doc):
        for param in op.get("parameters", []):
            if param["in"] != "path":
                continue
            seen.add(param["name"])
            assert "{" + param["name"] + "}" in path
            kind = param["schema"]["type"]
            assert kind == ("integer" if param["name"] in INT_PARAMS else "string"), param
        assert not re.search(r"\{[^}]*:", path), path  # no router regex in the document
    assert INT_PARAMS <= seen
    # The server routes only digits there: anything else is a documented 404.
    r = await client.get("/api/appointments/abc")
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


async def test_created_and_csrf_and_conflict_statuses_are_documented(clinic):  # noqa: F811
    t, p = clinic["t"], clinic["p"]
    doc = await document(t)
    ops = {(m, path): op for m, path, op in operations(doc)}
    # 201 where the server creates something, and it says 201.
    invite = await t.post("/api/practice/invites")
    assert invite.status == 201 and "201" in ops["POST", "/api/practice/invites"]["responses"]
    assert "200" not in ops["POST", "/api/practice/invites"]["responses"]
    # Every state-changing operation documents 403 (CSRF or origin refused), public ones too.
    for (method, path), op in ops.items():
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            assert {"400", "403"} <= set(op["responses"]), (method, path)
            assert any(p["in"] == "header" and p["name"] == "X-CSRF-Token" and p["required"]
                       for p in op["parameters"]), (method, path)
    refused = await t.client.post("/api/login", json={"username": "x", "password": "y"})
    assert refused.status == 403 and "403" in ops["POST", "/api/login"]["responses"]
    # 409: a conflict the server really sends is in the document.
    docs = (await json_ok(await p.get("/api/consent-documents")))["documents"]
    stale = await p.post("/api/consents", {"document_id": docs[0]["id"], "version": 1,
                                           "sha256": "0" * 64, "typed_name": "Sam"})
    assert stale.status == 409 and "409" in ops["POST", "/api/consents"]["responses"]


async def test_unknown_body_fields_are_refused_by_schema_and_server_alike(clinic):  # noqa: F811
    t = clinic["t"]
    doc = await document(t)
    for method, path, op in operations(doc):
        if "requestBody" in op:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert schema["additionalProperties"] is False, (method, path)
    err = await error_of(await t.send("PATCH", "/api/me", {"display_name": "Robin",
                                                           "favourite_colour": "teal"}), 422)
    assert err["field"] == "favourite_colour"


async def test_405_keeps_its_allow_header(client):
    for method, path, allowed in [("DELETE", "/api/me", {"GET", "PATCH"}),
                                  ("PUT", "/api/login", {"POST"}),
                                  ("POST", "/healthz", {"GET"})]:
        r = await client.send(method, path)
        assert r.status == 405, (method, path)
        assert (await r.json())["error"]["code"] == "method_not_allowed"
        assert set(r.headers["Allow"].split(",")) >= allowed, r.headers.get("Allow")
    page = await client.client.put("/login", headers={"X-CSRF-Token": client.csrf})
    assert page.status == 405 and "POST" in page.headers["Allow"]


async def test_success_responses_match_their_declared_schema(clinic):  # noqa: F811
    t = clinic["t"]
    doc = await document(t)
    me = doc["paths"]["/api/me"]["get"]["responses"]["200"]["content"]["application/json"]
    assert me["schema"]["required"] == ["user"]
    body = await json_ok(await t.get("/api/me"))
    assert set(body) == {"user"} and body["user"]["role"] == Role.THERAPIST.value
    # Every documented operation is routed, under the document's path.
    app = t.client.server.app
    routed = {(op.method, op.doc_path) for op in app[appkeys.API].operations}
    assert routed == {(m, path) for m, path, _ in operations(doc)}
