"""A small synchronous EnOS Connect Service client for tests: it signs as the vendor documents
(APIM access token, ``apim-signature``) and returns the answer's JSON.

What :class:`thingport.testing.ThingportServer` makes products and devices with; a test may use it
to set up or check what its own code under test did.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from thingport.crypto import signing


class EnosError(AssertionError):
    """An EnOS answer with a non-zero ``code``; the whole answer is in the message."""


class EnosClient:
    """``call`` sends one signed request; ``data`` also checks ``code == 0`` and returns ``data``."""

    def __init__(self, url: str, app_key: str, app_secret: str, org_id: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.app_key = app_key
        self.app_secret = app_secret
        self.org_id = org_id
        self.http = httpx.Client(base_url=self.url, timeout=timeout)
        self._token: str | None = None
        self._last_ms = 0
        self._lock = threading.Lock()

    def _now_ms(self) -> str:
        """Epoch ms, strictly increasing: the server accepts a signature once, so two identical calls in
        one millisecond must not sign the same."""
        with self._lock:
            self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
            return str(self._last_ms)

    def token(self) -> str:
        if self._token is None:
            ts = self._now_ms()
            r = self.http.post("/apim-token-service/v2.0/token/get", json={
                "appKey": self.app_key, "timestamp": int(ts),
                "encryption": signing.apim_token_encryption(self.app_key, ts, self.app_secret)})
            body = r.json()
            if body.get("status") != 0:
                raise EnosError(f"token/get: {body}")
            self._token = str(body["data"]["accessToken"])
        return self._token

    def call(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None) -> dict[str, Any]:
        """``path`` like ``/connect-service/v2.1/devices``; ``orgId`` is added to ``query``."""
        params = {"orgId": self.org_id, **(query or {})}
        text = "" if body is None else json.dumps(body)
        ts = self._now_ms()
        token = self.token()
        headers = {"Content-Type": "application/json;charset=UTF-8", "apim-accesstoken": token,
                   "apim-timestamp": ts,
                   "apim-signature": signing.apim_signature(token, params.items(), text, ts, self.app_secret)}
        r = self.http.request(method, f"{path}?{urlencode(params)}", content=text.encode(), headers=headers)
        answer: dict[str, Any] = r.json()
        return answer

    def data(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None) -> Any:
        answer = self.call(method, path, query, body)
        if answer.get("code") != 0:
            raise EnosError(f"{method} {path} {query}: {answer}")
        return answer.get("data")

    def close(self) -> None:
        self.http.close()
