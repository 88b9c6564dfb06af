"""Org B's user and org B's admin API key try every route on org A's objects: always 404."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import parley
from tests.support import Account, assert_error, bearer, create_key, join, register


@dataclass
class OrgA:
    owner: Account
    member: Account
    org_id: str
    key: dict[str, Any]
    invitation_id: str
    invitation_token: str
    conversation_id: str
    user_message_id: str
    reply_id: str


async def _org_a(client: httpx.AsyncClient) -> OrgA:
    owner = await register(client, name="Alice")
    member = await join(client, owner, owner.org_id, "member")
    key = await create_key(client, owner, scopes=["admin", "inference"])
    invite = await client.post(
        f"/v1/orgs/{owner.org_id}/invitations",
        json={"email": "someone@example.com", "role": "viewer"},
        headers=owner.headers,
    )
    assert invite.status_code == 201
    conversation = await client.post(
        "/v1/conversations", json={"title": "A's", "model": "parley-mock"}, headers=owner.headers
    )
    assert conversation.status_code == 201, conversation.text
    exchange = await client.post(
        f"/v1/conversations/{conversation.json()['id']}/messages",
        json={"content": "hello"},
        headers=owner.headers,
    )
    assert exchange.status_code == 201, exchange.text
    return OrgA(
        owner,
        member,
        owner.org_id,
        key,
        invite.json()["id"],
        invite.json()["token"],
        conversation.json()["id"],
        exchange.json()["user_message"]["id"],
        exchange.json()["assistant_message"]["id"],
    )


# (method, path template, json body): every route that reads, changes or deletes an object
# addressed by id. Templates use {org}, {user}, {key}, {invitation} for org A's objects.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/orgs/{org}", None),
    ("PATCH", "/v1/orgs/{org}", {"name": "taken over"}),
    ("GET", "/v1/orgs/{org}/members", None),
    ("PATCH", "/v1/orgs/{org}/members/{user}", {"role": "viewer"}),
    ("DELETE", "/v1/orgs/{org}/members/{user}", None),
    ("GET", "/v1/orgs/{org}/invitations", None),
    ("POST", "/v1/orgs/{org}/invitations", {"email": "x@example.com", "role": "member"}),
    ("DELETE", "/v1/orgs/{org}/invitations/{invitation}", None),
    ("GET", "/v1/orgs/{org}/audit-log", None),
    ("GET", "/v1/api-keys/{key}", None),
    ("DELETE", "/v1/api-keys/{key}", None),
    ("GET", "/v1/conversations/{conversation}", None),
    ("PATCH", "/v1/conversations/{conversation}", {"title": "taken over"}),
    ("DELETE", "/v1/conversations/{conversation}", None),
    ("GET", "/v1/conversations/{conversation}/messages", None),
    ("GET", "/v1/conversations/{conversation}/export", None),
    ("POST", "/v1/conversations/{conversation}/messages", {"content": "hello"}),
    ("POST", "/v1/conversations/{conversation}/messages/{reply}/regenerate", {}),
    ("POST", "/v1/conversations/{conversation}/messages/{user_message}/edit", {"content": "x"}),
    ("POST", "/v1/conversations/{conversation}/cancel", None),
    ("POST", "/v1/conversations/{conversation}/ws-ticket", None),
]


# Routes with an id that is not an organisation's object, and why they are not walked.
NOT_ORG_OBJECTS = {
    ("GET", "/v1/models/{}"): "models are the platform's, filtered by plan (tested in gateway)",
    ("PUT", "/v1/admin/orgs/{}/subscription"): "platform operators only: 403 for everyone else",
}


def _fill(template: str, a: OrgA) -> str:
    return template.format(
        org=a.org_id,
        user=a.member.user_id,
        key=a.key["id"],
        invitation=a.invitation_id,
        conversation=a.conversation_id,
        user_message=a.user_message_id,
        reply=a.reply_id,
    )


def test_every_object_route_is_walked(app: FastAPI) -> None:
    """A new route addressing an object by id must be added to ROUTES (or this fails)."""
    walked = {(m, re.sub(r"\{\w+\}", "{}", p)) for m, p, _ in ROUTES}
    for path, operations in app.openapi()["paths"].items():
        if "{" not in path:
            continue
        for method in operations:
            key = (method.upper(), re.sub(r"\{[\w:]+\}", "{}", path))
            if key in NOT_ORG_OBJECTS:
                continue
            assert key in walked, f"{key} is not in the tenant isolation walk"


@pytest.mark.parametrize("who", ["user", "api_key"])
async def test_other_org_gets_404_everywhere(client: httpx.AsyncClient, who: str) -> None:
    a = await _org_a(client)
    b = await register(client, name="Bob")
    b_key = await create_key(client, b, scopes=["admin", "inference", "conversations", "knowledge"])
    headers = b.headers if who == "user" else bearer(b_key["key"])

    for method, template, body in ROUTES:
        response = await client.request(method, _fill(template, a), json=body, headers=headers)
        assert_error(response, 404, "not_found_error")
        assert a.org_id not in response.text or "No organisation" in response.text

    # Naming org A in the header does not help either.
    as_a = {**headers, "Parley-Organization": a.org_id}
    for method, path in (("GET", "/v1/api-keys"), ("GET", f"/v1/api-keys/{a.key['id']}")):
        assert_error(await client.request(method, path, headers=as_a), 404, "not_found_error")
    created = await client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=as_a
    )
    assert_error(created, 404, "not_found_error")

    # Nothing of org A changed.
    org = await client.get(f"/v1/orgs/{a.org_id}", headers=a.owner.headers)
    assert org.json()["name"] == "Alice's organisation"
    members = await client.get(f"/v1/orgs/{a.org_id}/members", headers=a.owner.headers)
    assert {m["user_id"]: m["role"] for m in members.json()["data"]} == {
        a.owner.user_id: "owner",
        a.member.user_id: "member",
    }
    invitations = await client.get(
        f"/v1/orgs/{a.org_id}/invitations?status=pending", headers=a.owner.headers
    )
    assert [i["id"] for i in invitations.json()["data"]] == [a.invitation_id]
    still_works = await client.get("/v1/orgs", headers=bearer(a.key["key"]))
    assert still_works.status_code == 200
    assert [o["id"] for o in still_works.json()["data"]] == [a.org_id]


async def test_other_orgs_objects_do_not_leak_into_lists(client: httpx.AsyncClient) -> None:
    a = await _org_a(client)
    b = await register(client)
    keys = await client.get("/v1/api-keys", headers=b.headers)
    assert keys.status_code == 200
    assert keys.json()["data"] == []
    orgs = await client.get("/v1/orgs", headers=b.headers)
    assert [o["id"] for o in orgs.json()["data"]] == [b.org_id]
    audit = await client.get(f"/v1/orgs/{b.org_id}/audit-log", headers=b.headers)
    assert all(e["target_id"] != a.key["id"] for e in audit.json()["data"])


async def test_invitation_token_of_another_org_is_404_for_the_wrong_person(
    client: httpx.AsyncClient,
) -> None:
    a = await _org_a(client)
    b = await register(client)
    for action in ("accept", "decline"):
        response = await client.post(
            f"/v1/invitations/{action}", json={"token": a.invitation_token}, headers=b.headers
        )
        assert_error(response, 404, "not_found_error", "invitation_not_found")


async def test_unknown_ids_are_404_for_members_too(client: httpx.AsyncClient) -> None:
    a = await _org_a(client)
    unknown = {
        "org": "org_00000000000000000000000000",
        "user": "usr_00000000000000000000000000",
        "key": "key_00000000000000000000000000",
        "invitation": "inv_00000000000000000000000000",
        "conversation": "conv_00000000000000000000000000",
        "user_message": "msg_00000000000000000000000000",
        "reply": "msg_00000000000000000000000001",
    }
    for method, template, body in ROUTES:
        path = template.format(**{**unknown, "org": a.org_id})
        ids = ("{user}", "{key}", "{invitation}", "{conversation}", "{user_message}", "{reply}")
        if "{org}" in template and not any(k in template for k in ids):
            path = template.format(**unknown)  # an unknown organisation itself
        response = await client.request(method, path, json=body, headers=a.owner.headers)
        assert_error(response, 404, "not_found_error")


def test_repositories_scope_tenant_rows_through_one_helper() -> None:
    """Every query of org-owned rows goes through parley.db.query (scoped, scoped_update,
    scoped_delete, of_org): a filter written by hand is one that can be forgotten."""
    source = Path(parley.__file__).parent
    by_hand = re.compile(r"\.org_id\s*==\s*org_id")
    offenders = [
        f"{path.relative_to(source)}:{number}"
        for path in sorted(source.rglob("*.py"))
        if path.name != "query.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if by_hand.search(line)
    ]
    assert offenders == [], offenders
