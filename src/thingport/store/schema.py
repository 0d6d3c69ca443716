"""The tables. Secrets are stored only as keyring ciphertexts (``*_enc`` columns)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

organizations = Table(
    "organizations",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("create_time", BigInteger, nullable=False),
)

applications = Table(
    "applications",
    metadata,
    Column("app_key", String(64), primary_key=True),
    Column("org_id", String(64), ForeignKey("organizations.org_id"), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("secret_enc", Text, nullable=False),
    Column("permissions", Text, nullable=False),
    Column("rsa_public_key", Text, nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("create_time", BigInteger, nullable=False),
    #: The secret a rotation with a grace period replaced (ciphertext) and when it stops signing.
    Column("prev_secret_enc", Text, nullable=True),
    Column("prev_until", BigInteger, nullable=True),
)

thing_models = Table(
    "thing_models",
    metadata,
    Column("org_id", String(64), ForeignKey("organizations.org_id"), primary_key=True),
    Column("model_id", String(128), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("create_time", BigInteger, nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("product_key", String(32), primary_key=True),
    Column("org_id", String(64), ForeignKey("organizations.org_id"), nullable=False),
    Column("name_default", String(256), nullable=False),
    Column("name_i18n", Text, nullable=False),
    Column("secret_enc", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("product_type", String(16), nullable=False),
    Column("data_format", String(16), nullable=False),
    Column("model_id", String(128), nullable=False),
    Column("bidirectional_auth", Boolean, nullable=False),
    Column("dynamic_activate_enabled", Boolean, nullable=False),
    Column("tags", Text, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("create_by", String(64), nullable=True),
    Column("update_time", BigInteger, nullable=False),
    Column("update_by", String(64), nullable=True),
    # devices of the product, kept by DeviceStore in the transaction that adds or removes one
    Column("device_count", Integer, nullable=False, server_default="0"),
    Index("ix_products_org_create", "org_id", "create_time"),
)

devices = Table(
    "devices",
    metadata,
    Column("asset_id", String(32), primary_key=True),
    Column("org_id", String(64), ForeignKey("organizations.org_id"), nullable=False),
    Column("product_key", String(32), ForeignKey("products.product_key"), nullable=False),
    Column("device_key", String(64), nullable=False),
    Column("name_default", String(256), nullable=False),
    Column("name_i18n", Text, nullable=False),
    Column("secret_enc", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("timezone", String(64), nullable=False),
    Column("attributes", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("online", Boolean, nullable=False),
    Column("active_time", BigInteger, nullable=True),
    Column("last_online_time", BigInteger, nullable=True),
    Column("last_offline_time", BigInteger, nullable=True),
    Column("gateway_asset_id", String(32), ForeignKey("devices.asset_id"), nullable=True, index=True),
    #: The node whose broker holds the device's session while ``online`` (NULL: an external broker's).
    Column("online_node", String(64), nullable=True),
    #: The credential a rotation with a grace period replaced (services/devices.py ``replace_key_in``):
    #: its key, its secret (ciphertext) and when it stops logging in; NULL when there is none.
    Column("prev_device_key", String(64), nullable=True),
    Column("prev_secret_enc", Text, nullable=True),
    Column("prev_until", BigInteger, nullable=True),
    UniqueConstraint("product_key", "device_key"),
    Index("ix_devices_org_create", "org_id", "create_time"),
    Index("ix_devices_product_create", "product_key", "create_time"),
    # Every search field stays flat as the registry grows (migration search_0400).
    Index("ix_devices_org_device_key", "org_id", "device_key", "create_time"),
    Index("ix_devices_org_timezone", "org_id", "timezone", "create_time"),
)


def _labels(name: str, owner: str, owner_fk: str) -> Table:
    """Searchable key/value facts of an owner (tags, attributes, localized names).

    ``field`` is the search field (``deviceTags``, ``deviceAttributes``, ``deviceName``); names are
    stored with ``key`` = locale, and ``''`` for the default value.
    """
    return Table(
        name,
        metadata,
        Column(owner, String(32), ForeignKey(owner_fk, ondelete="CASCADE"), primary_key=True),
        Column("field", String(32), primary_key=True),
        Column("key", String(128), primary_key=True),
        Column("value", Text, nullable=False),
        Index(f"ix_{name}_field_key", "field", "key"),
        # Values are unbounded (a btree row is not): a prefix, the whole value checked by the query.
        # The value before the key: a name search without a locale names no key (search_0410).
        Index(f"ix_{name}_field_value_key", "field", text("substr(value, 1, 100)"), "key"),
    )


device_labels = _labels("device_labels", "asset_id", "devices.asset_id")
product_labels = _labels("product_labels", "product_key", "products.product_key")

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("token_enc", Text, nullable=False),
    Column("app_key", String(64), ForeignKey("applications.app_key"), nullable=False, index=True),
    Column("create_time", BigInteger, nullable=False),
    Column("expire_time", BigInteger, nullable=False),
)

used_nonces = Table(
    "used_nonces",
    metadata,
    Column("nonce", String(128), primary_key=True),
    Column("expire_time", BigInteger, nullable=False, index=True),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("org_id", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("asset_id", String(32), nullable=True),
    Column("payload", Text, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    #: The node that wrote it (NULL: a ``thingport`` command): a node's own events reach its bus at commit.
    Column("node_id", String(64), nullable=True),
    Index("ix_events_org_id", "org_id", "id"),
)

#: The nodes serving this database: their heartbeat (a node silent for long is dead, its devices
#: offline) and how far each has read the events (where it catches up from after a restart).
cluster_nodes = Table(
    "cluster_nodes",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("start_time", BigInteger, nullable=False),
    Column("heartbeat_time", BigInteger, nullable=False),
    Column("event_cursor", BigInteger, nullable=False),
)

#: Counters several nodes share (store/counters.py): the MQTT login failures of an address and user
#: name, the OceanConnect calls of an application in each slot of its window.
shared_counters = Table(
    "shared_counters",
    metadata,
    Column("scope", String(16), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("slot", BigInteger, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("start_time", BigInteger, nullable=False, index=True),
)


# --- OceanConnect northbound API (dialects/oceanconnect) -------------------------------------

#: OceanConnect state of a device, beside its ``devices`` row. ``node_id`` is unique across the
#: whole server (an MQTT login names only the nodeId); a device created by another dialect gets a
#: row with no node_id the first time OceanConnect-only fields are set on it.
oc_devices = Table(
    "oc_devices",
    metadata,
    Column("asset_id", String(32), ForeignKey("devices.asset_id", ondelete="CASCADE"), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("app_key", String(64), nullable=True),
    Column("node_id", String(64), nullable=True, unique=True),
    Column("mode", String(16), nullable=True),
    Column("pending", Boolean, nullable=False),
    Column("verify_code_enc", Text, nullable=True),
    Column("verify_code_hash", String(64), nullable=True, unique=True),
    Column("expire_time", BigInteger, nullable=True, index=True),
    Column("activated", Boolean, nullable=False),
    Column("psk_enc", Text, nullable=True),
    Column("device_type", String(256), nullable=True),
    Column("location", String(1024), nullable=True),
    Column("info", Text, nullable=False),
    Column("create_time", BigInteger, nullable=False),
)

#: The organization's product that registrations without a productId go to.
oc_default_products = Table(
    "oc_default_products",
    metadata,
    Column("org_id", String(64), ForeignKey("organizations.org_id"), primary_key=True),
    Column("product_key", String(32), ForeignKey("products.product_key"), nullable=False),
)

#: One row per application: only its latest access token is valid. Tokens are kept as hashes.
oc_tokens = Table(
    "oc_tokens",
    metadata,
    Column("app_key", String(64), ForeignKey("applications.app_key"), primary_key=True),
    Column("access_hash", String(64), nullable=False, unique=True),
    Column("refresh_hash", String(64), nullable=False, unique=True),
    Column("access_expire", BigInteger, nullable=False),
    Column("refresh_expire", BigInteger, nullable=False),
    Column("create_time", BigInteger, nullable=False),
)

oc_subscriptions = Table(
    "oc_subscriptions",
    metadata,
    Column("subscription_id", String(32), primary_key=True),
    Column("org_id", String(64), nullable=False, index=True),
    Column("app_key", String(64), ForeignKey("applications.app_key"), nullable=False),
    Column("notify_type", String(64), nullable=False),
    Column("callback_url", String(1024), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("create_time", BigInteger, nullable=False),
    UniqueConstraint("app_key", "notify_type"),
)

#: How far the push fan-out has read the ``events`` table (one row, id 1).
oc_push_cursor = Table(
    "oc_push_cursor",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_event_id", BigInteger, nullable=False),
)

#: Pushes waiting for delivery (deleted once the callback answered 2xx).
oc_pushes = Table(
    "oc_pushes",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("subscription_id", String(32), nullable=False, index=True),
    Column("callback_url", String(1024), nullable=False),
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_time", BigInteger, nullable=False, index=True),
    Column("last_error", Text, nullable=True),
    Column("create_time", BigInteger, nullable=False),
)


# --- Living Platform (Alibaba IoT): end users, sessions, homes, bindings, provisioning state ------

living_users = Table(
    "living_users",
    metadata,
    Column("identity_id", String(40), primary_key=True),
    Column("org_id", String(64), ForeignKey("organizations.org_id"), nullable=False),
    Column("login", String(128), nullable=False),
    Column("create_time", BigInteger, nullable=False),
    UniqueConstraint("org_id", "login"),
)

#: One-time auth codes and sessions are kept only as SHA-256 hashes: a database copy logs no one in.
living_auth_codes = Table(
    "living_auth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("identity_id", String(40), ForeignKey("living_users.identity_id"), nullable=False, index=True),
    Column("expire_time", BigInteger, nullable=False),
    Column("used_time", BigInteger, nullable=True),
)

living_sessions = Table(
    "living_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("refresh_hash", String(64), nullable=False, unique=True),
    Column("identity_id", String(40), ForeignKey("living_users.identity_id"), nullable=False, index=True),
    Column("app_key", String(64), ForeignKey("applications.app_key"), nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("token_expire", BigInteger, nullable=False),
    Column("refresh_expire", BigInteger, nullable=False),
)

living_homes = Table(
    "living_homes",
    metadata,
    Column("home_id", String(40), primary_key=True),
    Column("org_id", String(64), ForeignKey("organizations.org_id"), nullable=False),
    Column("owner_id", String(40), ForeignKey("living_users.identity_id"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("create_time", BigInteger, nullable=False),
)

living_bindings = Table(
    "living_bindings",
    metadata,
    Column("asset_id", String(32), ForeignKey("devices.asset_id", ondelete="CASCADE"), primary_key=True),
    Column("identity_id", String(40), ForeignKey("living_users.identity_id"), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("home_id", String(40), ForeignKey("living_homes.home_id"), nullable=True),
    Column("owned", Boolean, nullable=False),
    Column("bind_time", BigInteger, nullable=False),
    Index("ix_living_bindings_identity", "identity_id", "bind_time"),
)

living_products = Table(
    "living_products",
    metadata,
    Column("product_key", String(32), ForeignKey("products.product_key", ondelete="CASCADE"), primary_key=True),
    Column("status", Integer, nullable=False),
    Column("net_type", Integer, nullable=False),
    Column("category_key", String(64), nullable=True),
    Column("category_name", String(128), nullable=True),
    Column("category_id", BigInteger, nullable=True),
    Column("bind_window_s", Integer, nullable=True),
    Column("require_permit_join", Boolean, nullable=False),
)

#: Only the latest token a device reported counts (one row per device).
living_bind_tokens = Table(
    "living_bind_tokens",
    metadata,
    Column("asset_id", String(32), ForeignKey("devices.asset_id", ondelete="CASCADE"), primary_key=True),
    Column("token_hash", String(64), nullable=False, index=True),
    Column("report_time", BigInteger, nullable=False),
    Column("expire_time", BigInteger, nullable=False),
    Column("used_time", BigInteger, nullable=True),
)

living_enrollees = Table(
    "living_enrollees",
    metadata,
    Column("registrar_id", String(32), ForeignKey("devices.asset_id", ondelete="CASCADE"), primary_key=True),
    Column("enrollee_id", String(32), ForeignKey("devices.asset_id", ondelete="CASCADE"), primary_key=True),
    Column("org_id", String(64), nullable=False, index=True),
    Column("ssid", String(64), nullable=False),
    Column("bssid", String(32), nullable=False),
    Column("rssi", String(16), nullable=False),
    Column("type", Integer, nullable=False),
    Column("status", Integer, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
)

living_permits = Table(
    "living_permits",
    metadata,
    Column("gateway_id", String(32), ForeignKey("devices.asset_id", ondelete="CASCADE"), primary_key=True),
    Column("product_key", String(32), nullable=True),
    Column("time", Integer, nullable=False),
    Column("open_time", BigInteger, nullable=False),
)

# --- device certificates (docs/certificates.md) -------------------------------------------------

device_cas = Table(
    "device_cas",
    metadata,
    Column("ca_id", String(40), primary_key=True),
    Column("org_id", String(64), ForeignKey("organizations.org_id"), nullable=False),
    Column("authority", String(8), nullable=False),
    Column("cert_pem", Text, nullable=False),
    Column("key_enc", Text, nullable=False),
    Column("not_after", BigInteger, nullable=False),
    Column("imported", Boolean, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    #: When a newer CA took over signing; it still vouches for what it signed until not_after.
    Column("retire_time", BigInteger, nullable=True),
    Index("ix_device_cas_org_id_authority", "org_id", "authority"),
)

device_certificates = Table(
    "device_certificates",
    metadata,
    Column("cert_sn", String(24), primary_key=True),  # the serial number, in decimal
    Column("org_id", String(64), ForeignKey("organizations.org_id"), nullable=False),
    Column("asset_id", String(32), nullable=False, index=True),
    Column("ca_id", String(40), ForeignKey("device_cas.ca_id"), nullable=False),
    Column("authority", String(8), nullable=False),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("cert_pem", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("issuer", Text, nullable=False),
    Column("valid_day", Integer, nullable=False),
    Column("issue_time", BigInteger, nullable=False),
    Column("not_before", BigInteger, nullable=False),
    Column("expire_time", BigInteger, nullable=False),
    Column("issue_by", String(64), nullable=True),  # the application (None: an operator)
    Column("revoke_time", BigInteger, nullable=True),
    Column("revoke_reason", Integer, nullable=True),
    Column("revoke_by", String(64), nullable=True),
)

#: Each device's credential history (store/credentials.py): when a secret was issued, by whom,
#: last used, ended when and why. Never a secret: only which key it went with.
device_credentials = Table(
    "device_credentials",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("org_id", String(64), nullable=False),
    Column("asset_id", String(32), nullable=False, index=True),
    Column("device_key", String(64), nullable=False),
    Column("issue_time", BigInteger, nullable=True),  # None: issued before history was kept
    Column("issued_by", String(160), nullable=True),  # the audit actor (None: before history was kept)
    Column("last_used", BigInteger, nullable=True),
    Column("end_time", BigInteger, nullable=True),
    Column("end_reason", String(32), nullable=True),
)


# --- Audit trail (services/audit.py, docs/operations.md "Audit trail") ---------------------------

#: One row per change, or attempted change, through any dialect, the admin API or the CLI. No
#: secret is ever written here: ``target`` is an identifier, ``error`` a domain error's message.
audit_records = Table(
    "audit_records",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("time", BigInteger, nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("actor", String(160), nullable=False),
    Column("address", String(64), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("action", String(160), nullable=False),
    Column("target", String(160), nullable=False),
    Column("outcome", String(8), nullable=False),
    Column("status", Integer, nullable=False),
    Column("error", String(512), nullable=False),
    Index("ix_audit_records_time", "time"),
    Index("ix_audit_records_org_id", "org_id", "id"),
    Index("ix_audit_records_target", "target", "id"),
    Index("ix_audit_records_actor", "actor", "id"),
)
