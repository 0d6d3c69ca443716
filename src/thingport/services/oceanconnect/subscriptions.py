"""OceanConnect subscriptions: which callback URL of an application hears which notifyType.

One subscription per application and notifyType; deleting subscriptions drops the pushes still
queued for them (``store/oceanconnect.py``). What is pushed is the pushes module's concern.
A callback URL must lead to an address pushes may reach (:mod:`thingport.net`); that is checked
here, so the application hears of it at once, and again at every connection.
"""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError

from thingport.domain.errors import Conflict, InvalidArgument, NotFound
from thingport.net import AddressPolicy
from thingport.services.context import Caller, Core
from thingport.store.oceanconnect import Subscription


class SubscriptionService:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.store = core.oceanconnect
        #: Where pushes may go, for the worker that sends them as well.
        self.targets = AddressPolicy.parse(core.settings.oceanconnect_push_allowed_networks,
                                           setting="oceanconnect_push_allowed_networks")

    async def subscribe(self, caller: Caller, notify_type: str, callback_url: str, channel: str) -> Subscription:
        assert caller.app_key is not None
        refused = await self.targets.check_url(callback_url)
        if refused is not None:
            raise InvalidArgument(f"callbackUrl: {refused}; pushes go to public addresses only", field="callbackUrl")
        async with self.core.write(caller.org_id) as tx:
            sub = Subscription(uuid.uuid4().hex, caller.org_id, caller.app_key, notify_type, callback_url, channel,
                               tx.now)
            if (await self.store.subscriptions(tx.conn, caller.app_key, {"notify_type": notify_type}, 1, 0))[1]:
                raise Conflict(f"notifyType: {notify_type} is already subscribed", field="notifyType")
            try:
                async with tx.conn.begin_nested():
                    await self.store.insert_subscription(tx.conn, sub)
            except IntegrityError as exc:
                raise Conflict(f"notifyType: {notify_type} is already subscribed", field="notifyType") from exc
        return sub

    async def get(self, caller: Caller, subscription_id: str) -> Subscription:
        assert caller.app_key is not None
        async with self.core.read() as conn:
            sub = await self.store.subscription(conn, caller.app_key, subscription_id)
        if sub is None:
            raise NotFound(f"subscriptionId: subscription {subscription_id} does not exist", field="subscriptionId")
        return sub

    async def search(self, caller: Caller, filters: dict[str, str | None], page_no: int, page_size: int
                     ) -> tuple[list[Subscription], int]:
        assert caller.app_key is not None
        async with self.core.read() as conn:
            return await self.store.subscriptions(conn, caller.app_key, filters, page_size, page_no * page_size)

    async def unsubscribe(self, caller: Caller, subscription_id: str) -> None:
        assert caller.app_key is not None
        async with self.core.write(caller.org_id) as tx:
            if not await self.store.delete_subscriptions(tx.conn, caller.app_key,
                                                         {"subscription_id": subscription_id}):
                raise NotFound(f"subscriptionId: subscription {subscription_id} does not exist",
                               field="subscriptionId")

    async def unsubscribe_all(self, caller: Caller, filters: dict[str, str | None]) -> int:
        assert caller.app_key is not None
        async with self.core.write(caller.org_id) as tx:
            return await self.store.delete_subscriptions(tx.conn, caller.app_key, filters)
