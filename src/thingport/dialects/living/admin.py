"""Operator API for the Living Platform under ``/admin/v1/living`` (operator token, like ``/admin/v1``):
end users, auth codes, session invalidation, product metadata."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Router, get, post, put
from litestar.params import FromPath, JSONBody

from thingport.dialects.admin.routes import admin_errors, operator_guard, screen_request, svc
from thingport.dialects.common import Int64
from thingport.services.living_accounts import MetaPatch
from thingport.store.living_accounts import ProductMeta, User

Req = Request[Any, Any, Any]
STATUS_NAMES = {0: "development", 1: "published"}


class UserIn(msgspec.Struct):
    login: str


class UserOut(msgspec.Struct):
    identityId: str
    orgId: str
    login: str
    createTime: int


class AuthCodeOut(msgspec.Struct):
    authCode: str
    identityId: str
    expireTime: int


class SessionsEnded(msgspec.Struct):
    identityId: str
    ended: int


class ProductMetaIn(msgspec.Struct):
    status: str | None = None
    netType: Int64 | None = None
    nodeType: Int64 | None = None
    categoryKey: str | None = None
    categoryName: str | None = None
    categoryId: Int64 | None = None
    bindWindowS: Int64 | None = None
    requirePermitJoin: bool | None = None


class ProductMetaOut(msgspec.Struct):
    productKey: str
    status: str
    netType: int
    categoryKey: str | None
    categoryName: str | None
    categoryId: int | None
    bindWindowS: int | None
    requirePermitJoin: bool


def user_out(u: User) -> UserOut:
    return UserOut(u.identity_id, u.org_id, u.login, u.create_time)


def meta_out(m: ProductMeta) -> ProductMetaOut:
    return ProductMetaOut(m.product_key, STATUS_NAMES[m.status], m.net_type, m.category_key, m.category_name,
                          m.category_id, m.bind_window_s, m.require_permit_join)


def meta_patch(data: ProductMetaIn) -> MetaPatch:
    return MetaPatch(data.status, data.netType, data.nodeType, data.categoryKey, data.categoryName, data.categoryId,
                     data.bindWindowS, data.requirePermitJoin)


@post("/orgs/{org_id:str}/users", summary="Create an end user of an organization")
async def create_user(request: Req, org_id: FromPath[str], data: JSONBody[UserIn]) -> UserOut:
    return user_out(await svc(request).living.create_user(org_id, data.login))


@get("/orgs/{org_id:str}/users", summary="List the end users of an organization")
async def list_users(request: Req, org_id: FromPath[str]) -> list[UserOut]:
    return [user_out(u) for u in await svc(request).living.list_users(org_id)]


@post("/users/{identity_id:str}/auth-codes", summary="Mint a short-lived single-use auth code for a user")
async def mint_code(request: Req, identity_id: FromPath[str]) -> AuthCodeOut:
    code, expire = await svc(request).living.mint_auth_code(identity_id)
    return AuthCodeOut(code, identity_id, expire)


@post("/users/{identity_id:str}/sessions/invalidate", summary="End every session of a user", status_code=200)
async def end_sessions(request: Req, identity_id: FromPath[str]) -> SessionsEnded:
    return SessionsEnded(identity_id, await svc(request).living.end_sessions(identity_id))


@get("/orgs/{org_id:str}/products/{product_key:str}", summary="Living metadata of a product")
async def get_meta(request: Req, org_id: FromPath[str], product_key: FromPath[str]) -> ProductMetaOut:
    return meta_out(await svc(request).living.product_meta(org_id, product_key))


@put("/orgs/{org_id:str}/products/{product_key:str}",
     summary="Set a product's status, netType, category, bind window and permit-join rule")
async def set_meta(request: Req, org_id: FromPath[str], product_key: FromPath[str],
                   data: JSONBody[ProductMetaIn]) -> ProductMetaOut:
    return meta_out(await svc(request).living.set_product_meta(org_id, product_key, meta_patch(data)))


router = Router(
    path="/admin/v1/living",
    route_handlers=[create_user, list_users, mint_code, end_sessions, get_meta, set_meta],
    guards=[operator_guard],
    before_request=screen_request,
    exception_handlers=admin_errors.map,
    tags=["Admin", "Living"],
    security=[{"operatorToken": []}],
)
