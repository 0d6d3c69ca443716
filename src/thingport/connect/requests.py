"""Requests devices send the platform over MQTT, and their replies.

Topics ``/sys/{pk}/{dk}/{path}`` and ``/ext/session/{pk}/{dk}/{path}``; each handler gets the parsed
request and answers with reply ``data`` or a domain error, which becomes the family's code
(:mod:`thingport.connect.messages`). EnOS and Alink share the topics and differ in a field name
(``deviceKey`` / ``deviceName``) and a few spellings, which the handlers accept both of; what they
answer follows the session's :class:`~thingport.connect.family.TopicFamily`.
Other dialects' device features add their handlers with :meth:`DeviceRequests.add`.

Handlers see the node only as a :class:`DeviceContext`: the services they call and the gateway's
sub-device sessions.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from thingport.connect import grammar, messages
from thingport.connect.messages import BadRequest, Request
from thingport.connect.session import DeviceSession
from thingport.domain import validate
from thingport.domain.errors import DomainError, InvalidArgument
from thingport.logs import LogLimiter
from thingport.services import audit
from thingport.services.connectivity import ConnectivityService, Credential, DeviceLogin
from thingport.services.devices import DeviceSpec
from thingport.services.provisioning import ProvisioningService

log = logging.getLogger(__name__)
#: Malformed requests and our own faults: a device that floods them costs one line a minute each.
REPORTS = LogLimiter()

MAX_TOPO_ADD = 30  # Alink: at most 30 sub-devices per thing/topo/add (docs/mqtt.md, "Device requests")
MAX_BATCH_LOGIN = 50  # Alink batch login; EnOS documents none, the same bound protects both
MAX_REGISTER = 1000

#: The roots of the topics requests come on (``/sys/{pk}/{dk}/{path}``, ``/ext/session/{pk}/{dk}/{path}``).
REQUEST_ROOTS = ("sys", "ext/session")

#: Replies devices send to the platform's own commands: consumed, never routed to anyone.
PLATFORM_REPLIES = {
    ("sys", p) for p in ("thing/enable_reply", "thing/disable_reply", "thing/delete_reply",
                         "thing/topo/change_reply", "thing/topo/add/notify_reply", "thing/gateway/permit_reply",
                         "_thing/event/notify_reply", "thing/awss/enrollee/checkin_reply")
} | {
    ("ext/session", p) for p in ("thing/activate/info_reply", "combine/enable_reply", "combine/disable_reply",
                                 "combine/delete_reply")
}


@dataclass(frozen=True, slots=True)
class Target:
    """The device a request topic names (for gateway requests, the gateway itself)."""

    root: str
    product_key: str
    device_key: str
    path: str


class DeviceContext(Protocol):
    """What a request handler may use of the node: the services it calls, the gateway's sessions."""

    @property
    def connectivity(self) -> ConnectivityService: ...

    @property
    def provisioning(self) -> ProvisioningService: ...

    async def refresh_subs(self, session: DeviceSession) -> None: ...

    async def sub_login(self, gateway: DeviceSession, cred: Credential) -> DeviceLogin: ...

    async def sub_logout(self, gateway: DeviceSession, product_key: str, device_key: str) -> None: ...

    def send(self, session: DeviceSession, topic: str, payload: bytes, qos: int = 0) -> None: ...


Handler = Callable[[DeviceContext, DeviceSession, Request, Target], Awaitable[Any]]


def parse_topic(topic: str) -> Target | None:
    """The device a request topic names, read by the grammar its rights are read by."""
    named = grammar.SIGNED.parse(topic)
    if named is None or named.root.name not in REQUEST_ROOTS:
        return None
    product_key, device_key = named.names
    return Target(named.root.name, product_key, device_key, named.path)


class DeviceRequests:
    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], Handler] = {}
        #: Requests handled, by the device's topic family and the request's topic (``/metrics``).
        self.counts: Counter[tuple[str, str]] = Counter()
        for (root, path), handler in _CORE.items():
            self.add(root, path, handler)

    def add(self, root: str, path: str, handler: Handler) -> None:
        self._handlers[(root, path)] = handler

    def filters(self) -> list[str]:
        """Topic filters matching every request handled here, any device (``/sys/+/+/thing/topo/add`` …)."""
        return sorted(f"/{root}/+/+/{path}" for root, path in self._handlers)

    def takes(self, topic: str) -> bool | None:
        """Whether :meth:`handle` takes a message on ``topic`` (not to be routed), when that is known
        without handling it: False, True for a reply to the platform, None for a request."""
        target = parse_topic(topic)
        if target is None:
            return False
        if (target.root, target.path) in PLATFORM_REPLIES:
            return True
        return None if (target.root, target.path) in self._handlers else False

    async def handle(self, ctx: DeviceContext, session: DeviceSession, topic: str, payload: bytes, qos: int) -> bool:
        """Answer a platform request; True when the message was the platform's (not to be routed)."""
        target = parse_topic(topic)
        if target is None:
            return False
        if (target.root, target.path) in PLATFORM_REPLIES:
            return True
        handler = self._handlers.get((target.root, target.path))
        if handler is None:
            return False
        try:
            req = messages.parse_request(payload)
        except BadRequest as exc:
            REPORTS.log(log, logging.WARNING, "malformed", "malformed request from %s on %s: %s", session.client_id,
                        topic, exc.message)
            ctx.send(session, topic + "_reply",
                     messages.reply(exc.request_id, messages.PARAM_ERROR, None, exc.message), qos)
            return True
        self.counts[(session.family.name, f"{target.root}/{target.path}")] += 1
        # what the request changes goes in the audit trail, as the device's doing
        attempt = audit.Attempt("mqtt", req.id[:64], action=f"{target.root}/{target.path}",
                                org_id=session.org_id, actor=f"device:{session.asset_id}", target=session.asset_id)
        token = audit.ATTEMPT.set(attempt)
        try:
            data = await handler(ctx, session, req, target)
            body = messages.reply(req.id, messages.OK, data)
        except DomainError as err:
            attempt.error = err.message
            body = messages.reply(req.id, messages.error_code(session.family.reply_codes, err), None, err.message)
        except Exception:  # a fault of ours: the device still gets its answer, the log one line a minute
            REPORTS.log(log, logging.ERROR, "failed", "request from %s on %s failed", session.client_id, topic,
                        exc_info=True)
            internal = DomainError("internal error")  # the INTERNAL kind: 400 in both families
            body = messages.reply(req.id, messages.error_code(session.family.reply_codes, internal), None,
                                  internal.message)
        finally:
            attempt.closed = True
            audit.ATTEMPT.reset(token)
        ctx.send(session, topic + "_reply", body, qos)
        return True


# --- helpers shared by the handlers -----------------------------------------------------------

def own_target(session: DeviceSession, target: Target) -> None:
    if not session.owns(target.product_key, target.device_key):
        raise InvalidArgument(f"topic: {target.path} must be sent on the gateway's own topic", field="topic")


def as_list(params: Any, what: str, limit: int, *, key: str | None = None) -> list[dict[str, Any]]:
    """The request's list of entries (``params`` itself, or ``params[key]``), each an object."""
    items = _entries(params, what, limit, key)
    if not all(isinstance(i, dict) for i in items):
        raise InvalidArgument(f"{what}: every entry must be an object", field=what)
    return items


def strings(params: dict[str, Any], key: str, limit: int) -> list[str]:
    """``params[key]``: a non-empty list of strings."""
    items = _entries(params, key, limit, key)
    if not all(isinstance(i, str) for i in items):
        raise InvalidArgument(f"{key}: every entry must be a string", field=key)
    return items


def _entries(params: Any, what: str, limit: int, key: str | None) -> list[Any]:
    items = params.get(key) if key is not None and isinstance(params, dict) else params
    if not isinstance(items, list) or not items:
        raise InvalidArgument(f"{what}: must be a non-empty list", field=what)
    if len(items) > limit:
        raise InvalidArgument(f"{what}: at most {limit} entries per request", field=what)
    return items


def as_object(params: Any) -> dict[str, Any]:
    """The request's ``params`` when the method takes one object."""
    if not isinstance(params, dict):
        raise InvalidArgument("params: must be an object", field="params")
    return params


def text(entry: dict[str, Any], *names: str, required: bool = True, strict: bool = False) -> str:
    """The first of ``names`` present in ``entry``, as a non-empty string.

    Numbers are taken as their text (devices send ids and timestamps either way) unless ``strict``.
    """
    for name in names:
        value = entry.get(name)
        if value is not None and value != "":
            kinds = (str,) if strict else (str, int, float)
            if not isinstance(value, kinds) or isinstance(value, bool):
                raise InvalidArgument(f"{name}: must be a string", field=name)
            return str(value)
    if required:
        raise InvalidArgument(f"{names[0]}: missing", field=names[0])
    return ""


def integer(entry: dict[str, Any], name: str, default: int | None = None) -> int:
    """``entry[name]`` as a JSON integer; ``default`` when absent (required when there is none)."""
    value = entry.get(name)
    if value is None:
        if default is None:
            raise InvalidArgument(f"{name}: missing", field=name)
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name}: must be an integer", field=name)
    return value


def device_of(entry: dict[str, Any]) -> tuple[str, str]:
    return text(entry, "productKey"), text(entry, "deviceKey", "deviceName")


def credential(entry: dict[str, Any], shared: dict[str, Any] | None = None) -> Credential:
    """A sub-device's signed claim; fields missing from the entry come from ``shared`` (batch login)."""
    merged = {**(shared or {}), **entry}
    product_key, device_key = device_of(merged)
    fields = {"productKey": product_key}
    for name in ("clientId", "timestamp"):
        value = text(merged, name, required=False)
        if value:
            fields[name] = value
    return Credential(product_key, device_key, fields, text(merged, "signMethod", "signmethod"),
                      text(merged, "sign"), text(merged, "secureMode", "securemode", required=False) or "2")


#: What the entries of a batch login may leave to the request (EnOS sends one clientId and timestamp).
_SHARED_LOGIN_FIELDS = ("clientId", "timestamp", "signMethod", "signmethod", "secureMode", "securemode")


def device_entry(session: DeviceSession, pk: str, dk: str, **extra: Any) -> dict[str, Any]:
    return {"productKey": pk, session.family.key_field: dk, **extra}


def login_entry(session: DeviceSession, login: DeviceLogin) -> dict[str, Any]:
    d = login.device
    if not session.family.sub_login_details:
        return device_entry(session, d.product_key, d.device_key)
    extra: dict[str, Any] = {"assetId": d.asset_id}
    if login.activating:
        extra["deviceSecret"] = d.secret
    return device_entry(session, d.product_key, d.device_key, **extra)


# --- handlers -----------------------------------------------------------------------------------

async def topo_add(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    own_target(session, target)
    creds = [credential(e) for e in as_list(req.params, "params", MAX_TOPO_ADD)]
    added = await ctx.connectivity.add_topology(session.asset_id, creds)
    await ctx.refresh_subs(session)
    return [device_entry(session, d.product_key, d.device_key) for d in added]


async def topo_delete(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    own_target(session, target)
    refs = [device_of(e) for e in as_list(req.params, "params", MAX_REGISTER)]
    removed = await ctx.connectivity.remove_topology(session.asset_id, refs)
    await ctx.refresh_subs(session)
    return [device_entry(session, d.product_key, d.device_key) for d in removed]


async def topo_get(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    own_target(session, target)
    subs = await ctx.connectivity.sub_devices(session.asset_id)
    return [device_entry(session, d.product_key, d.device_key) for d in subs]


async def combine_login(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    own_target(session, target)
    login = await ctx.sub_login(session, credential(as_object(req.params)))
    return login_entry(session, login)


async def combine_login_batch(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    """EnOS ``combine/login/batch`` (shared clientId/timestamp) and Alink ``combine/batch_login``."""
    own_target(session, target)
    params = as_object(req.params)
    key = "deviceList" if "deviceList" in params else "subDevices"
    entries = as_list(params, key, MAX_BATCH_LOGIN, key=key)
    shared = {k: params[k] for k in _SHARED_LOGIN_FIELDS if k in params}
    logged: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for entry in entries:
        cred = credential(entry, shared)
        try:
            logged.append(login_entry(session, await ctx.sub_login(session, cred)))
        except DomainError as err:
            log.info("sub-device login of %s/%s via %s refused: %s", cred.product_key, cred.device_key,
                     session.asset_id, err.message)
            failed.append(device_entry(session, cred.product_key, cred.device_key))
    if session.family.batch_login_lists_failures:
        return {"loginedSubDevices": logged, "failedSubDevices": failed}
    if failed and not logged:
        raise InvalidArgument("deviceList: no sub-device could log in", field="deviceList")
    return logged


async def combine_logout(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    own_target(session, target)
    entries = [req.params] if isinstance(req.params, dict) else as_list(req.params, "params", MAX_BATCH_LOGIN)
    out = []
    for entry in entries:
        pk, dk = device_of(entry)
        await ctx.sub_logout(session, pk, dk)
        out.append(device_entry(session, pk, dk))
    return out[0] if isinstance(req.params, dict) else out


async def device_register(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    """EnOS ``thing.device.register``: deviceName a string or a StringI18n ``{defaultValue, i18nValue}``."""
    own_target(session, target)
    specs = []
    for entry in as_list(req.params, "params", MAX_REGISTER):
        if entry.get("deviceName") in (None, ""):
            raise InvalidArgument("deviceName: missing", field="deviceName")
        specs.append(DeviceSpec(
            text(entry, "productKey"), validate.i18n(entry["deviceName"], field="deviceName"),
            text(entry, "timezone", required=False) or "+00:00",
            device_key=text(entry, "deviceKey", required=False) or None,
            attributes=validate.attributes(entry.get("deviceAttributes")) or None,
            description=validate.text(entry.get("deviceDesc"), field="deviceDesc")))
    created = await ctx.connectivity.register_devices(session.asset_id, specs)
    return [{"assetId": d.asset_id, "productKey": d.product_key, "deviceKey": d.device_key,
             "deviceSecret": d.secret} for d in created]


async def sub_register(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    own_target(session, target)
    refs = [device_of(e) for e in as_list(req.params, "params", MAX_REGISTER)]
    devices = await ctx.connectivity.sub_register(session.asset_id, refs)
    return [device_entry(session, d.product_key, d.device_key, deviceSecret=d.secret, iotId=d.asset_id)
            for d in devices]


async def product_register(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    """Alink gateway-proxied dynamic registration: each sub-device signed with its product secret."""
    own_target(session, target)
    out = []
    entries = as_list(req.params, "proxieds", MAX_REGISTER, key="proxieds")
    for entry in entries:
        pk, dk = device_of(entry)
        reg = await ctx.connectivity.register(
            pk, dk, text(entry, "random"), text(entry, "signMethod", "signmethod"), text(entry, "sign"))
        out.append(device_entry(session, pk, dk, deviceSecret=reg.device.secret))
    return {"proxieds": out}


async def list_found(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    own_target(session, target)
    refs = [device_of(e) for e in as_list(req.params, "params", MAX_REGISTER)]
    found = await ctx.connectivity.report_found(session.asset_id, refs)
    return [device_entry(session, d.product_key, d.device_key) for d in found]


_CORE: dict[tuple[str, str], Handler] = {
    ("sys", "thing/topo/add"): topo_add,
    ("sys", "thing/topo/delete"): topo_delete,
    ("sys", "thing/topo/get"): topo_get,
    ("sys", "thing/device/register"): device_register,
    ("sys", "thing/sub/register"): sub_register,
    ("sys", "thing/proxy/provisioning/product_register"): product_register,
    ("sys", "thing/list/found"): list_found,
    ("ext/session", "combine/login"): combine_login,
    ("ext/session", "combine/login/batch"): combine_login_batch,
    ("ext/session", "combine/batch_login"): combine_login_batch,
    ("ext/session", "combine/logout"): combine_logout,
    ("ext/session", "combine/batch_logout"): combine_logout,
}
