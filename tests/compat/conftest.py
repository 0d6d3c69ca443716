"""A live Thingport server and an application in it, for the vendor SDK compatibility tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import PG_URL, reset_postgres
from tests.support.live_server import LiveServer, live_server
from thingport.settings import Settings

ORG_ID = "o-compat"
MODEL_ID = "model1"


@dataclass(frozen=True, slots=True)
class Account:
    """An application of the test organization, with its RSA private key (PEM) for v2.4 secrets."""

    org_id: str
    app_key: str
    secret: str
    private_key_pem: str


@pytest.fixture
def live(settings: Settings, backend: str) -> Iterator[LiveServer]:
    if backend == "postgresql":
        asyncio.run(reset_postgres(PG_URL))
    with live_server(settings) as server:
        yield server


def make_account(live: LiveServer) -> Account:
    """The test organization, its model, and an application with an RSA key pair, made as an operator would."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    live.admin("POST", "/orgs", {"name": "Compat", "orgId": ORG_ID})
    live.admin("POST", f"/orgs/{ORG_ID}/models", {"modelId": MODEL_ID})
    app = live.admin("POST", f"/orgs/{ORG_ID}/apps", {"name": "sdk", "publicKey": public_pem})
    return Account(ORG_ID, app["appKey"], app["appSecret"], private_pem)


@pytest.fixture
def account(live: LiveServer) -> Account:
    return make_account(live)
