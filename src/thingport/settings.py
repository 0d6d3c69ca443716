"""One settings object: defaults, then an optional TOML file, then ``THINGPORT_*`` variables.

Command-line flags override all of these (the CLI passes them as ``overrides``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    http_port: int = 8080
    #: Plain MQTT listener of the embedded broker; 0 turns it off.
    mqtt_port: int = 1883
    #: TLS MQTT listener, opened when a certificate and key (PEM files) are set.
    mqtt_tls_port: int = 8883
    mqtt_tls_cert: str = ""
    mqtt_tls_key: str = ""
    #: Failed MQTT logins from one address and user name before that pair is refused unchecked
    #: for the rest of the window (0 = never).
    mqtt_login_failures: int = 5
    mqtt_login_failure_window_s: int = 60
    #: Connections the kernel queues for an MQTT listener until the broker accepts them (capped by
    #: the kernel's ``net.core.somaxconn``); a full queue drops connection attempts silently.
    mqtt_listen_backlog: int = 4096
    #: Online state, activation and login events are written in batches at most this often, ms
    #: (docs/mqtt.md, "Durability").
    presence_batch_ms: int = 5
    #: External-broker mode: ``mqtt://user:pass@host:1883`` (``mqtts://`` for TLS). When set, the
    #: embedded broker stays off and Thingport answers device requests as a privileged client of
    #: that broker, through the shared subscription group below (docs/mqtt.md).
    mqtt_external_url: str = ""
    mqtt_external_group: str = "thingport"
    #: Shared secret EMQX sends (``Authorization: Bearer …``) to the ``/mqtt/emqx`` hooks; empty = hooks off.
    emqx_hook_token: str = ""
    #: EMQX REST API (``http://emqx:18083``) and an API key/secret, to kick replaced or disabled devices.
    emqx_api_url: str = ""
    emqx_api_key: str = ""
    emqx_api_secret: str = ""
    #: SQLAlchemy URL; empty means SQLite in ``data_dir``. PostgreSQL: ``postgresql+asyncpg://…``.
    database_url: str = ""
    #: Master key file; empty means ``data_dir/master.key``.
    master_key_file: str = ""
    #: Operator token for the admin HTTP API; empty means ``data_dir/operator.token``.
    operator_token: str = ""
    #: How far a signed request's timestamp may be from the server clock, in seconds.
    signature_window_s: int = 300
    #: How long a node trusts its cached application and token lookups, seconds (0 = no cache).
    #: Changes made through this node apply at once; those made elsewhere within this time.
    auth_cache_ttl_s: int = 5
    #: Replay guard: "memory" (one node; batched to the database) or "database" (several nodes
    #: sharing PostgreSQL). Empty: memory on SQLite, database on PostgreSQL.
    nonce_store: str = ""
    #: EnOS access token lifetime, seconds (the vendor's is 7200).
    access_token_ttl_s: int = 7200
    product_device_limit: int = 10_000
    gateway_sub_device_limit: int = 10_000
    max_page_size: int = 1000
    max_batch_size: int = 1000
    max_body_bytes: int = 1_048_576
    # HTTP connections (docs/operations.md, "Limits"); 0 turns a limit off
    #: Time to receive a request's head (line and headers), from the connection's start or the
    #: next request's first byte; then HTTP 408 and the connection is closed.
    http_header_timeout_s: float = 10.0
    #: Time to receive a request's body once its head is in; then the connection is closed.
    http_body_timeout_s: float = 30.0
    #: How long a kept-alive connection may stay idle between requests.
    http_keep_alive_s: float = 5.0
    #: Largest request head (line and headers); larger is HTTP 431.
    http_max_header_bytes: int = 65_536
    #: Open connections from one client address; one more is HTTP 503. Behind a reverse proxy
    #: every connection comes from the proxy: raise it or set 0 and limit in the proxy.
    http_connections_per_address: int = 64
    #: Open connections and requests in progress in all; beyond it requests are HTTP 503.
    http_max_connections: int = 2048
    #: SQLite ``synchronous``: NORMAL survives a killed process; FULL also survives power loss.
    sqlite_synchronous: str = "NORMAL"
    log_level: str = "info"
    # Several nodes on one PostgreSQL (docs/operations.md, "Several nodes")
    #: This node's name among those sharing the database; empty: ``<host name>:<http_port>``. Keep it
    #: stable across restarts: a node catches up on the events it missed from where that name stopped.
    node_id: str = ""
    #: How often the node records that it is alive (and how far it has read the events), seconds.
    node_heartbeat_s: float = 2.0
    #: A node silent this long is dead: another node marks the devices it held offline, seconds.
    node_dead_after_s: float = 15.0
    #: How often the events other processes wrote are read: SQLite's only way (a ``thingport``
    #: command), PostgreSQL's fallback beside LISTEN/NOTIFY; ms.
    event_poll_ms: int = 250
    #: ``text`` (one line per record, for a terminal) or ``json`` (one object per line, for a log
    #: collector); every logger of the process, uvicorn's and the migrations' included.
    log_format: str = "text"
    #: Bearer token ``GET /metrics`` asks for; empty: open (docs/operations.md, "Metrics").
    metrics_token: str = ""
    #: Audit records older than this many days are deleted (hourly); 0 keeps them for ever.
    audit_retention_days: int = 90
    # OceanConnect (docs/oceanconnect.md)
    #: How long a verify-code registration waits for its bind when the request gives no timeout.
    oceanconnect_bind_timeout_s: int = 180
    #: Per-application flow control: at most this many calls per window, then 403 1010009.
    oceanconnect_throttle_calls: int = 100
    oceanconnect_throttle_window_s: int = 60
    #: Lifetime of a refreshToken (the vendor docs say 24 h or 1 month depending on the version).
    oceanconnect_refresh_token_ttl_s: int = 86_400
    #: Push delivery: per-attempt timeout, attempts before a push is dropped, longest back-off.
    oceanconnect_push_timeout_s: int = 10
    oceanconnect_push_max_attempts: int = 15
    oceanconnect_push_backoff_max_s: int = 300
    #: How often lapsed registrations are looked for, seconds.
    oceanconnect_expiry_interval_s: int = 2
    # Device certificates (docs/certificates.md)
    #: The longest a device certificate may be asked for (EnOS's per-product maximum; one value here).
    certificate_max_valid_days: int = 3650
    #: MQTT over TLS asks clients for a certificate (optional: password logins on TLS go on working).
    mqtt_tls_client_certs: bool = True
    # Living Platform (docs/living.md)
    #: How long a device's reported bind token stays valid, seconds (the device SDK renews at 90 s).
    living_bind_token_ttl_s: int = 120
    #: Time-window binding: seconds after a device's last connect, unless its product sets its own.
    living_bind_window_s: int = 600
    #: Operator-minted auth code lifetime, seconds (single use).
    living_auth_code_ttl_s: int = 300
    #: iotToken and refreshToken lifetimes, seconds (the values seen from the vendor's cloud).
    living_iot_token_ttl_s: int = 72_000
    living_refresh_token_ttl_s: int = 720_000
    #: API-gateway signatures: how far X-Ca-Timestamp / Date may be from the server clock, and how
    #: long a nonce stays used, seconds.
    living_signature_window_s: int = 900
    #: ``timeout`` sent with enrollee found_reply and checkin, seconds.
    living_enrollee_timeout_s: int = 60
    # Outbound requests (docs/security.md, "Outbound pushes")
    #: Networks OceanConnect pushes may reach although they are not public (loopback, private,
    #: link-local, CGNAT…), comma-separated: ``10.20.0.0/16, fd00:1::/64``. Empty: public addresses only.
    oceanconnect_push_allowed_networks: str = ""
    # RabbitMQ as the external broker (docs/operations.md, "RabbitMQ")
    #: AMQP URL of Thingport's own RabbitMQ user (an administrator): ``amqp://thingport:…@rabbit:5672/``.
    #: When set, the embedded broker stays off and the node consumes device requests from RabbitMQ.
    rabbitmq_amqp_url: str = ""
    #: Management API (``http://rabbit:15672``, same user), to close replaced or disabled devices' connections.
    rabbitmq_api_url: str = ""
    #: Secret RabbitMQ's HTTP auth backend sends in its URLs (``…/mqtt/rabbitmq/user?token=…``); empty = off.
    rabbitmq_hook_token: str = ""
    #: Type of the durable request queue: ``classic``, or ``quorum`` on three or more RabbitMQ nodes.
    rabbitmq_queue_type: str = "classic"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'thingport.db').resolve()}"

    @property
    def key_file(self) -> Path:
        return Path(self.master_key_file) if self.master_key_file else self.data_dir / "master.key"

    @property
    def operator_token_file(self) -> Path:
        return self.data_dir / "operator.token"

    @classmethod
    def load(cls, config_file: str | Path | None = None, env: dict[str, str] | None = None,
             **overrides: Any) -> Settings:
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        config_file = config_file or env.get("THINGPORT_CONFIG")
        if config_file:
            with open(config_file, "rb") as fh:
                values.update(tomllib.load(fh))
        for f in fields(cls):
            key = "THINGPORT_" + f.name.upper()
            if key in env:
                values[f.name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **{k: _coerce(k, v) for k, v in values.items()})


def _coerce(name: str, value: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    if name not in kinds:
        raise ValueError(f"unknown setting '{name}'")
    kind = kinds[name]
    if kind == "Path":
        return Path(value)
    if kind in ("int", "float"):
        number = int if kind == "int" else float
        try:
            return number(value)
        except (TypeError, ValueError):
            raise ValueError(f"setting '{name}': expected {'an integer' if kind == 'int' else 'a number'}, "
                             f"got {value!r}") from None
    return str(value)
