"""A Living Platform app client for in-process tests, signing like ``alibabacloud-iot-api-gateway``.

The signature is made by the vendor's own ``alibabacloud_apigateway_util`` code, not by Thingport's.
"""

from __future__ import annotations

import json
import uuid
from email.utils import formatdate
from typing import Any

import httpx
from alibabacloud_apigateway_util.client import Client as GatewayUtil


class _Req:
    """The attributes ``GatewayUtil.get_signature`` reads from a Tea request."""

    def __init__(self, method: str, path: str, headers: dict[str, str]) -> None:
        self.method, self.pathname, self.headers, self.query = method, path, headers, {}


class LivingClient:
    def __init__(self, http: httpx.AsyncClient, app_key: str, app_secret: str) -> None:
        self.http, self.app_key, self.app_secret = http, app_key, app_secret
        self.iot_token: str | None = None
        self.identity_id = ""  # set by the tests' sign-in helper
        self.home = ""

    def signed(self, path: str, body: bytes, *, nonce: str | None = None, date: str | None = None,
               secret: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"date": date or formatdate(usegmt=True), "x-ca-nonce": nonce or str(uuid.uuid4()),
                   "x-ca-key": self.app_key, "x-ca-signaturemethod": "HmacSHA256", "accept": "application/json",
                   "content-type": "application/octet-stream",
                   "content-md5": GatewayUtil.get_content_md5(body.decode())}
        headers.update(extra or {})
        req = _Req("POST", path, headers)
        headers["x-ca-signature"] = GatewayUtil.get_signature(req, secret or self.app_secret)
        return headers

    async def raw(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(path, content=body, headers=headers)

    def body(self, params: dict[str, Any], api_ver: str = "1.0.2", token: str | bool | None = True) -> bytes:
        request: dict[str, Any] = {"apiVer": api_ver, "language": "en-US"}
        tok = self.iot_token if token is True else token
        if tok:
            request["iotToken"] = tok
        return json.dumps({"id": str(uuid.uuid4()), "version": "1.0", "request": request, "params": params}).encode()

    async def call(self, path: str, params: dict[str, Any] | None = None, *, api_ver: str = "1.0.2",
                   token: str | bool | None = True) -> dict[str, Any]:
        """The answer body of a signed call (any business code)."""
        body = self.body(params or {}, api_ver, token)
        r = await self.raw(path, body, self.signed(path, body))
        assert r.status_code == 200, (r.status_code, r.headers, r.text)
        out: dict[str, Any] = r.json()
        return out

    async def ok(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        out = await self.call(path, params, **kw)
        assert out["code"] == 200, out
        return out["data"]

    async def sign_in(self, auth_code: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.ok("/account/createSessionByAuthCode", {
            "request": {"authCode": auth_code, "accountType": "OA_SESSION", "appKey": self.app_key}},
            api_ver="1.0.4", token=False)
        self.iot_token = data["iotToken"]
        return data
