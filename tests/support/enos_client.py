"""A small EnOS Connect Service client that signs like the real ones do (APIM token or accessKey)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx


class EnosClient:
    def __init__(self, http: httpx.AsyncClient, app_key: str, app_secret: str, org_id: str,
                 scheme: str = "apim") -> None:
        self.http = http
        self.app_key = app_key
        self.app_secret = app_secret
        self.org_id = org_id
        self.scheme = scheme
        self._token: str | None = None

    async def token(self) -> str:
        if self._token is None:
            ts = int(time.time() * 1000)
            enc = hashlib.sha256(f"{self.app_key}{ts}{self.app_secret}".encode()).hexdigest()
            r = await self.http.post("/apim-token-service/v2.0/token/get",
                                     json={"appKey": self.app_key, "encryption": enc, "timestamp": ts})
            body = r.json()
            assert body["status"] == 0, body
            self._token = body["data"]["accessToken"]
        return self._token

    async def raw(self, method: str, path: str, params: dict[str, str], body: Any = None, *,
                  headers: dict[str, str] | None = None, sign: bool = True, timestamp: int | None = None,
                  ) -> httpx.Response:
        """Send a request; ``body`` may be a dict (JSON-encoded) or raw bytes/str."""
        params = {"orgId": self.org_id, **params}
        raw = body if isinstance(body, (str, bytes)) else (json.dumps(body) if body is not None else "")
        text = raw.decode() if isinstance(raw, bytes) else raw
        ts = str(timestamp if timestamp is not None else int(time.time() * 1000))
        h = {"Content-Type": "application/json;charset=UTF-8", **(headers or {})}
        if sign and self.scheme == "apim":
            tok = await self.token()
            data = tok + "".join(k + v for k, v in sorted(params.items())) + text + ts + self.app_secret
            h.update({"apim-accesstoken": tok, "apim-timestamp": ts,
                      "apim-signature": hashlib.sha256(data.encode()).hexdigest()})
        elif sign:
            params = {**params, "requestTimestamp": ts}
            data = self.app_key + "".join(k + v for k, v in sorted(params.items())) + text + self.app_secret
            params = {"accessKey": self.app_key, **params,
                      "sign": hashlib.sha1(data.encode()).hexdigest().upper()}
        url = f"{path}?{urlencode(params)}"
        return await self.http.request(method, url, content=raw.encode() if isinstance(raw, str) else raw,
                                       headers=h)

    async def call(self, method: str, path: str, params: dict[str, str], body: Any = None) -> dict[str, Any]:
        r = await self.raw(method, path, params, body)
        assert r.status_code in (200, 401, 500), r.text
        result: dict[str, Any] = r.json()
        return result

    # conveniences ---------------------------------------------------------------------------
    async def create_product(self, *, product_type: str = "Device", model_id: str = "model1",
                             **extra: Any) -> str:
        body = {"productName": {"defaultValue": "Meter"}, "productType": product_type, "dataFormat": "Json",
                "modelId": model_id, "biDirectionalAuth": False, **extra}
        r = await self.call("POST", "/connect-service/v2.1/products", {"action": "create"}, body)
        assert r["code"] == 0, r
        return str(r["data"])

    async def create_device(self, product_key: str, device_key: str | None = None, *, version: str = "v2.1",
                            **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"productKey": product_key, "deviceName": {"defaultValue": "dev"},
                                "timezone": "+08:00", **extra}
        if device_key is not None:
            body["deviceKey"] = device_key
        r = await self.call("POST", f"/connect-service/{version}/devices", {"action": "create"}, body)
        assert r["code"] == 0, r
        data: dict[str, Any] = r["data"]
        return data
