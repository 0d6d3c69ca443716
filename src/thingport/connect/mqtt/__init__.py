"""An embedded MQTT 3.1.1 broker core whose authentication, ACL and topic handling the platform decides.

``codec`` reads and writes packets, ``topics`` matches filters, ``broker`` runs the server.
"""

from thingport.connect.mqtt.broker import (
    AllowAllHooks,
    AuthResult,
    Broker,
    BrokerHooks,
    BrokerLimits,
    ClientInfo,
    ConnectInfo,
)

__all__ = ["AllowAllHooks", "AuthResult", "Broker", "BrokerHooks", "BrokerLimits", "ClientInfo", "ConnectInfo"]
