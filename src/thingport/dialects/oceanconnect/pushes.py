"""The background work of the OceanConnect dialect: push delivery and registration expiry.

Pushes are queued in the database by :meth:`PushService.fan_out` from the ``events``
table (so a push is never lost when the process stops, and an API call never waits for a
callback), then POSTed to the callback URL; anything but a 2xx answer is retried with back-off.
Delivery is at-least-once: a push whose answer was lost is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from thingport.dialects.oceanconnect import render
from thingport.services.container import Services
from thingport.services.events import Event
from thingport.store.oceanconnect import Push

log = logging.getLogger(__name__)
IDLE_POLL_S = 1.0


class OceanConnectWorker:
    def __init__(self, services: Services, client: httpx.AsyncClient | None = None) -> None:
        self.services = services
        self.oc = services.oceanconnect
        timeout = services.core.settings.oceanconnect_push_timeout_s
        self.client = client or httpx.AsyncClient(timeout=timeout, headers={"Content-Type": "application/json"})
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe = services.core.bus.subscribe(self._on_event)

    async def _on_event(self, _ev: Event) -> None:
        self._wake.set()

    async def send(self, push: Push) -> None:
        try:
            r = await self.client.post(push.callback_url, content=push.body.encode(),
                                       headers={"Content-Type": "application/json"})
            ok, error = r.is_success, f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        if ok:
            await self.oc.pushes.delivered(push)
        else:
            await self.oc.pushes.failed(push, error)

    async def deliver_due(self) -> int:
        """Send every push that is due now; returns how many were attempted."""
        sent = 0
        while True:
            batch = await self.oc.pushes.claim()
            if not batch:
                return sent
            by_url: dict[str, list[Push]] = {}
            for p in batch:
                by_url.setdefault(p.callback_url, []).append(p)
            await asyncio.gather(*(self._send_in_order(pushes) for pushes in by_url.values()))
            sent += len(batch)

    async def _send_in_order(self, pushes: list[Push]) -> None:
        """One callback receives its pushes in event order; different callbacks in parallel."""
        for p in pushes:
            await self.send(p)

    async def run_once(self) -> int:
        """Fan out new events, then deliver what is due (tests drive this directly)."""
        while await self.oc.pushes.fan_out(render.push):
            pass
        return await self.deliver_due()

    async def _push_loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("OceanConnect push pass failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)

    async def _expiry_loop(self) -> None:
        interval = max(1, self.services.core.settings.oceanconnect_expiry_interval_s)
        while True:
            try:
                if await self.oc.registrations.expire():
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("OceanConnect expiry pass failed")
            await asyncio.sleep(interval)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._push_loop(), name="oceanconnect-pushes"),
                       asyncio.create_task(self._expiry_loop(), name="oceanconnect-expiry")]

    async def stop(self) -> None:
        self._unsubscribe()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.client.aclose()
