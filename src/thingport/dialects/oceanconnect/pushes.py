"""The background work of the OceanConnect dialect: push delivery and registration expiry.

Pushes are queued in the database by :meth:`PushService.fan_out` from the ``events``
table (so a push is never lost when the process stops, and an API call never waits for a
callback), then POSTed to the callback URL; anything but a 2xx answer is retried with back-off.
Delivery is at-least-once: a push whose answer was lost is sent again. Across nodes a push is
claimed by one node under a lease (``PushService.claim``); a node killed after a callback answered
and before the answer was recorded leaves that one push to be sent again by another node when its
lease ends: per callback URL at most one, as a node sends one URL's pushes one after another.

Pushes connect only where the address policy allows (:mod:`thingport.net`): the callback's name is
resolved when connecting, every address checked, and the connection made to a checked address
(the name still goes in the Host header and TLS server name). Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence

import httpcore
import httpx

from thingport.dialects.oceanconnect import render
from thingport.net import AddressPolicy, Refused
from thingport.services.container import Services
from thingport.services.events import Event
from thingport.store.oceanconnect import Push

log = logging.getLogger(__name__)
IDLE_POLL_S = 1.0
SOCKET_OPTION = httpcore.SOCKET_OPTION


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """TCP connections to the addresses the policy allows, resolved here rather than by the socket layer."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[SOCKET_OPTION] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):  # not wait_for, which may swallow a cancel (Python 3.11)
                addresses = await self.policy.resolve(host, port)
        except Refused as exc:
            raise httpcore.ConnectError(f"refused: {exc}") from None
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{host}: no address within {timeout} s") from None
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from None
        failure: Exception = httpcore.ConnectError(f"{host}: no address")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SOCKET_OPTION] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("pushes go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PushTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool whose connections go through :class:`CheckedBackend`, no proxy."""

    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=False),
                                                  network_backend=CheckedBackend(policy))


class OceanConnectWorker:
    def __init__(self, services: Services, client: httpx.AsyncClient | None = None) -> None:
        self.services = services
        self.oc = services.oceanconnect
        timeout = self.timeout_s = services.core.settings.oceanconnect_push_timeout_s
        self.client = client or httpx.AsyncClient(
            timeout=timeout, headers={"Content-Type": "application/json"}, follow_redirects=False,
            transport=PushTransport(self.oc.subscriptions.targets))
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe = services.core.bus.subscribe(self._on_event)

    async def _on_event(self, _ev: Event) -> None:
        self._wake.set()

    async def send(self, push: Push, waiting: Sequence[Push] = ()) -> None:
        """POST one push, within the send timeout in all (the lease counts on it); ``waiting``: the
        pushes queued behind it, whose lease the answer's record renews."""
        try:
            async with asyncio.timeout(self.timeout_s):
                r = await self.client.post(push.callback_url, content=push.body.encode(),
                                           headers={"Content-Type": "application/json"})
            ok, error = r.is_success, f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        except TimeoutError:
            ok, error = False, f"no answer within {self.timeout_s} s"
        if ok:
            await self.oc.pushes.delivered(push, waiting)
        else:
            await self.oc.pushes.failed(push, error, waiting)

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
        for i, p in enumerate(pushes):
            await self.send(p, pushes[i + 1:])

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
            with contextlib.suppress(TimeoutError):  # not wait_for, which may swallow stop()'s cancel
                async with asyncio.timeout(IDLE_POLL_S):
                    await self._wake.wait()

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
