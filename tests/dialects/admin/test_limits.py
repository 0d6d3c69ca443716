"""Malformed operator requests are 400s naming the field, after the operator token (issue 11)."""

from __future__ import annotations

import httpx
import pytest

AUTH = {"Authorization": "Bearer operator-secret-token"}
DEEP = b'{"name": ' + b"[" * 1000 + b"]" * 1000 + b"}"


async def test_the_token_is_checked_before_the_body(http: httpx.AsyncClient) -> None:
    r = await http.post("/admin/v1/orgs", content=DEEP, headers={"Content-Type": "application/json"})
    assert r.status_code == 401


@pytest.mark.parametrize("path", ["/admin/v1/orgs", "/admin/v1/living/orgs/o-x/users"])
async def test_a_deep_body_is_400_naming_the_body(http: httpx.AsyncClient, path: str) -> None:
    r = await http.post(path, content=DEEP, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "body", r.text


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "orgId": "o-٣"}, "orgId"), ({"name": "x", "orgId": "o-²"}, "orgId"),
    ({"name": "x", "orgId": "o-acme\n"}, "orgId"), ({"name": "x", "orgId": "o" * 65}, "orgId"),
    ({"name": "x\u0000"}, "name"), ({"name": "x", "orgId": 2**64}, "orgId"),
])
async def test_org_ids_are_ascii_and_bounded(http: httpx.AsyncClient, body: dict[str, object], field: str) -> None:
    r = await http.post("/admin/v1/orgs", json=body, headers=AUTH)
    assert r.status_code == 400 and r.json()["field"] == field, r.text
    assert (await http.get("/admin/v1/orgs", headers=AUTH)).json() == []


async def test_nul_in_the_query_or_the_path_is_400(http: httpx.AsyncClient) -> None:
    r = await http.get("/admin/v1/apps", params={"orgId": "a\u0000"}, headers=AUTH)
    assert r.status_code == 400 and r.json()["field"] == "orgId", r.text
    r = await http.get("/admin/v1/orgs/a%00/models", headers=AUTH)
    assert r.status_code == 400 and r.json()["field"] == "org_id", r.text


async def test_numbers_litestar_reads_from_strings_are_bounded_too(http: httpx.AsyncClient) -> None:
    """Litestar reads ``"777"`` as 777, past the screen: 300 digits reached the database (a 500)."""
    org = (await http.post("/admin/v1/orgs", json={"name": "x"}, headers=AUTH)).json()["orgId"]
    r = await http.put(f"/admin/v1/living/orgs/{org}/products/p1", json={"categoryId": "9" * 300}, headers=AUTH)
    assert r.status_code == 400 and "categoryId" in r.text, r.text
