"""All services of one running Thingport, built once from the core."""

from __future__ import annotations

from dataclasses import dataclass, field

from thingport.services.accounts import AccountService
from thingport.services.activity import LoginActivity
from thingport.services.audit import AuditService
from thingport.services.bulk import BulkService
from thingport.services.certificates import CertificateService
from thingport.services.connectivity import ConnectivityService
from thingport.services.context import Core
from thingport.services.devices import DeviceService
from thingport.services.living_accounts import LivingAccountService
from thingport.services.oceanconnect.pushes import PushService
from thingport.services.oceanconnect.registrations import RegistrationService
from thingport.services.oceanconnect.subscriptions import SubscriptionService
from thingport.services.oceanconnect.tokens import TokenService
from thingport.services.overview import OverviewService
from thingport.services.products import ProductService
from thingport.services.provisioning import ProvisioningService
from thingport.services.topology import TopologyService


@dataclass(frozen=True, slots=True)
class OceanConnectServices:
    """The OceanConnect services, one per concern: ``services.oceanconnect.registrations`` …

    Grouped under the vendor's name rather than flat on :class:`Services` because only the
    OceanConnect dialect (and the front door's OceanConnect logins) calls them: the top level stays
    the services every dialect shares, and a call site names both the API family and the concern.
    """

    tokens: TokenService
    registrations: RegistrationService
    subscriptions: SubscriptionService
    pushes: PushService

    @classmethod
    def build(cls, core: Core, accounts: AccountService, devices: DeviceService) -> OceanConnectServices:
        return cls(TokenService(core, accounts), RegistrationService(core, devices), SubscriptionService(core),
                   PushService(core))


@dataclass(slots=True)
class Services:
    core: Core
    accounts: AccountService
    products: ProductService
    devices: DeviceService
    topology: TopologyService
    connectivity: ConnectivityService
    oceanconnect: OceanConnectServices
    living: LivingAccountService
    provisioning: ProvisioningService
    audit: AuditService
    overview: OverviewService
    certificates: CertificateService
    bulk: BulkService
    #: this process's device logins of the last hour, counted by the front door (the console charts them)
    activity: LoginActivity = field(default_factory=LoginActivity)

    @classmethod
    def build(cls, core: Core) -> Services:
        products = ProductService(core)
        devices = DeviceService(core, products)
        accounts = AccountService(core)
        topology = TopologyService(core, devices)
        living = LivingAccountService(core, devices)
        provisioning = ProvisioningService(core, devices, living, topology)
        connectivity = ConnectivityService(core, devices, topology, provisioning)
        return cls(core, accounts, products, devices, topology, connectivity,
                   OceanConnectServices.build(core, accounts, devices), living, provisioning,
                   AuditService(core), OverviewService(core, devices),
                   CertificateService(core, devices, connectivity.credentials), BulkService(core, products))
