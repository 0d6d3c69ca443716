"""All services of one running Thingport, built once from the core."""

from __future__ import annotations

from dataclasses import dataclass

from thingport.services.accounts import AccountService
from thingport.services.connectivity import ConnectivityService
from thingport.services.context import Core
from thingport.services.devices import DeviceService
from thingport.services.living_accounts import LivingAccountService
from thingport.services.oceanconnect import OceanConnectService
from thingport.services.products import ProductService
from thingport.services.provisioning import ProvisioningService
from thingport.services.topology import TopologyService


@dataclass(slots=True)
class Services:
    core: Core
    accounts: AccountService
    products: ProductService
    devices: DeviceService
    topology: TopologyService
    connectivity: ConnectivityService
    oceanconnect: OceanConnectService
    living: LivingAccountService
    provisioning: ProvisioningService

    @classmethod
    def build(cls, core: Core) -> Services:
        products = ProductService(core)
        devices = DeviceService(core, products)
        accounts = AccountService(core)
        topology = TopologyService(core, devices)
        living = LivingAccountService(core, devices)
        provisioning = ProvisioningService(core, devices, living, topology)
        return cls(core, accounts, products, devices, topology,
                   ConnectivityService(core, devices, topology, provisioning),
                   OceanConnectService(core, accounts, devices), living, provisioning)
