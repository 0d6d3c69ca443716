"""A grep of the database files for a known secret finds nothing."""

from pathlib import Path

import pytest

from thingport.domain.models import Application, I18nText, Page
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceSpec
from thingport.services.keys import rotate_master_key
from thingport.services.oceanconnect.registrations import VERIFY_CODE, RegistrationSpec
from thingport.store import schema
from thingport.store.rekey import SECRET_COLUMNS


async def make_device(services: Services, caller: Caller, app: Application, product_key: str) -> tuple[str, ...]:
    view = await services.devices.create(caller, DeviceSpec(product_key, I18nText("d"), "+08:00"))
    return view.device.secret, view.product.secret, app.secret


def db_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.glob("thingport.db*"))


async def test_no_secret_in_sqlite_files(services: Services, backend: str, caller: Caller, app: Application,
                                         service_product: str) -> None:
    if backend != "sqlite":
        pytest.skip("inspects the SQLite files; PostgreSQL stores the same ciphertext columns")
    device_secret, product_secret, app_secret = await make_device(services, caller, app, service_product)
    await services.core.db.close()  # checkpoint the WAL into the files we read
    raw = db_bytes(services.core.settings.data_dir)
    assert raw
    for secret in (device_secret, product_secret, app_secret):
        assert secret.encode() not in raw


async def test_rotation_reencrypts_and_secrets_survive(services: Services, caller: Caller, app: Application,
                                                       service_product: str) -> None:
    device_secret, _, app_secret = await make_device(services, caller, app, service_product)
    old_primary = services.core.keyring.primary
    kid, count = await rotate_master_key(services.core)
    assert kid != old_primary and count >= 3
    assert list(services.core.keyring.keys) == [kid]
    apps = await services.accounts.list_apps(caller.org_id)
    assert apps[0].secret == app_secret
    found, _ = await services.devices.search(caller, None, Page(1, 10))
    assert found[0].device.secret == device_secret


def test_every_ciphertext_column_is_rotated() -> None:
    enc = {(t.name, c.name) for t in schema.metadata.tables.values() for c in t.columns if c.name.endswith("_enc")}
    assert enc == {(t.name, col) for t, _, col, _ in SECRET_COLUMNS}


async def test_oceanconnect_registrations_survive_rotation(services: Services, caller: Caller, app: Application,
                                                           service_product: str) -> None:
    oc = services.oceanconnect.registrations
    reg = await oc.register(caller, RegistrationSpec(VERIFY_CODE, "node-rotated", verify_code="Code-rot"))
    await rotate_master_key(services.core)
    view = await oc.get(caller, reg.asset_id)
    assert view.reg is not None and view.reg.verify_code == "Code-rot"
    assert view.reg.psk == reg.psk
