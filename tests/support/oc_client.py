"""A small OceanConnect northbound client: form login, then app_key + Bearer on every call."""

from __future__ import annotations

from typing import Any

import httpx


class OcClient:
    def __init__(self, http: httpx.AsyncClient, app_id: str, secret: str) -> None:
        self.http = http
        self.app_id = app_id
        self.secret = secret
        self.token = ""

    async def login(self) -> dict[str, Any]:
        r = await self.http.post("/iocm/app/sec/v1.1.0/login", data={"appId": self.app_id, "secret": self.secret})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        self.token = body["accessToken"]
        return body

    def headers(self) -> dict[str, str]:
        return {"app_key": self.app_id, "Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.request(method, path, json=body, params=params,
                                       headers=self.headers() if headers is None else headers)

    async def register(self, node_id: str, **extra: Any) -> dict[str, Any]:
        r = await self.call("POST", "/iocm/app/reg/v1.1.0/deviceCredentials", {"nodeId": node_id, **extra})
        assert r.status_code == 200, r.text
        return dict(r.json())


def oc_error(r: httpx.Response, status: int, code: str, *words: str) -> None:
    """Assert a documented error answer: status, code as a JSON string (or gateway resultcode)."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    got = body.get("error_code", body.get("resultcode"))
    assert got == code, body
    desc = body.get("error_desc", body.get("resultmsg", ""))
    for w in words:
        assert w in desc, desc
