"""A RabbitMQ cluster on loopback for the broker tests, built from Debian's ``rabbitmq-server``.

Every run gets a fresh cluster: its own ``HOME`` and Erlang cookie, node names no other run takes,
an empty mnesia directory (an old cluster restarted can hang for minutes in the MQTT plugin's
client-id tracking), Erlang distribution on 127.0.0.1 only, and every port picked free. The
``rabbitmq-server`` and ``rabbitmqctl`` scripts are called directly, not through the Debian
wrappers in ``/usr/sbin``, which switch to the ``rabbitmq`` user and reset ``HOME`` (and with it the
cookie). Readiness is waited for with ``rabbitmqctl wait`` / ``await_startup``, never a fixed sleep.

The broker runs the files of ``deploy/rabbitmq/`` that a user copies, with loopback ports: the MQTT
plugin, the HTTP auth backend asking ``auth_url`` (Thingport, or a load balancer in front of its
nodes), the event exchange, the management API for kicks, and an internal administrator for
Thingport's own AMQP and API connections.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.support.processes import free_port

#: Where Debian installs the server; the newest version's scripts are used.
INSTALL_ROOT = Path("/usr/lib/rabbitmq/lib")
#: The files a user copies (docs/deploy.md), which every test cluster runs with.
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq"
LOOPBACK_DIST = "-kernel inet_dist_use_interface {127,0,0,1}"


def sbin() -> Path | None:
    """The ``sbin`` folder of the installed server, or None when RabbitMQ is not installed."""
    found = sorted(INSTALL_ROOT.glob("rabbitmq_server-*/sbin/rabbitmq-server"))
    return found[-1].parent if found else None


def config(node: Node, auth_url: str) -> str:
    """deploy/rabbitmq/rabbitmq.conf with this node's loopback ports and ``auth_url`` (``{kind}`` in it
    stands for ``user``, ``vhost``, ``resource``, ``topic``); logs to the console."""
    overrides = {
        "listeners.tcp.default": f"127.0.0.1:{node.amqp_port}",
        "mqtt.listeners.tcp.default": f"127.0.0.1:{node.mqtt_port}",
        "management.tcp.ip": "127.0.0.1", "management.tcp.port": str(node.http_port),
        **{f"auth_http.{kind}_path": auth_url.format(kind=kind) for kind in ("user", "vhost", "resource", "topic")},
        "log.console": "true", "log.console.level": "info", "log.file": "false",
    }
    lines = []
    for line in (DEPLOY / "rabbitmq.conf").read_text().splitlines():
        key = line.partition("=")[0].strip()
        lines.append(f"{key} = {overrides.pop(key)}" if key in overrides else line)
    return "\n".join([*lines, *(f"{k} = {v}" for k, v in overrides.items()), ""])


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    dir: Path
    amqp_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)

    @property
    def pid_file(self) -> Path:
        return self.dir / "rabbitmq.pid"

    @property
    def log(self) -> Path:
        return self.dir / "console.log"

    def env(self, home: Path) -> dict[str, str]:
        return {
            **os.environ, "HOME": str(home), "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"), "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.pid_file), "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": LOOPBACK_DIST, "RABBITMQ_CTL_ERL_ARGS": LOOPBACK_DIST,
        }


@dataclass
class Cluster:
    """Running nodes, the first one the cluster was joined to; ``admin`` may use AMQP and the API."""

    sbin: Path
    home: Path
    nodes: list[Node]
    admin: str
    admin_password: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def amqp_url(self, i: int = 0) -> str:
        return f"amqp://{self.admin}:{quote(self.admin_password, safe='')}@127.0.0.1:{self.nodes[i].amqp_port}/"

    def api_url(self, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.nodes[i].http_port}"

    def ctl(self, node: Node, *args: str, timeout_s: float = 120.0) -> str:
        """``rabbitmqctl -n NODE …``; fails with its output when it does."""
        done = subprocess.run([str(self.sbin / "rabbitmqctl"), "-q", "-n", node.name, *args],
                              env=node.env(self.home), capture_output=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {node.name} failed ({done.returncode}): "
                               f"{(done.stdout + done.stderr).decode(errors='replace')[-3000:]}")
        return done.stdout.decode()

    def start(self, node: Node) -> None:
        out = node.log.open("ab")
        self.procs[node.name] = subprocess.Popen([str(self.sbin / "rabbitmq-server")], env=node.env(self.home),
                                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

    def wait_booted(self, node: Node, timeout_s: int = 110) -> None:
        """Until the node runs its applications (``wait`` on its pid file, which fails if it died)."""
        try:
            self.ctl(node, "wait", "--timeout", str(timeout_s), str(node.pid_file), timeout_s=timeout_s + 10)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{exc}\nits log:\n{tail(node.log)}") from exc

    def stop(self, node: Node) -> None:
        """Stop one node (SIGTERM: the start script stops it properly), killing what is left after 30 s."""
        proc = self.procs.pop(node.name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def mqtt_connections(self, i: int = 0) -> list[tuple[str, str]]:
        """(client id, connection name) of every MQTT connection of the cluster, as the plugin tracks them."""
        out = self.ctl(self.nodes[i], "list_mqtt_connections", "client_id", "conn_name")
        return [(cid, name) for cid, _, name in (line.partition("\t") for line in out.splitlines()) if cid]


def tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(none)"


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


@contextmanager
def running(workdir: Path, auth_url: str, *, nodes: int = 2) -> Iterator[Cluster]:
    """Start ``nodes`` RabbitMQ nodes in parallel, join them into one cluster, add the administrator.

    ``auth_url``: where the HTTP auth backend asks, ``{kind}`` standing for its four paths.

    Yields once every node's MQTT listener and management API are up; stops them all afterwards.
    """
    found = sbin()
    if found is None:
        raise RuntimeError("rabbitmq-server is not installed")
    home = workdir / "home"
    home.mkdir(parents=True)
    cookie = home / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(20))
    cookie.chmod(0o400)
    tag = secrets.token_hex(3)
    members = [Node(f"tp{i + 1}-{tag}@localhost", workdir / f"rmq{i + 1}") for i in range(nodes)]
    for node in members:
        node.dir.mkdir()
        (node.dir / "rabbitmq.conf").write_text(config(node, auth_url))
        for name in ("advanced.config", "enabled_plugins"):
            (node.dir / name).write_text((DEPLOY / name).read_text())
        (node.dir / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's
    cluster = Cluster(found, home, members, "thingport", secrets.token_urlsafe(16))
    with ExitStack() as stack:
        for node in reversed(members):
            stack.callback(cluster.stop, node)
        for node in members:
            cluster.start(node)
        with ThreadPoolExecutor(len(members)) as pool:
            list(pool.map(cluster.wait_booted, members))
        first = members[0]
        for node in members[1:]:
            cluster.ctl(node, "stop_app")
            cluster.ctl(node, "join_cluster", first.name)
            cluster.ctl(node, "start_app")
            cluster.ctl(node, "await_startup")
        cluster.ctl(first, "add_user", cluster.admin, cluster.admin_password)
        cluster.ctl(first, "set_user_tags", cluster.admin, "administrator")
        cluster.ctl(first, "set_permissions", "-p", "/", cluster.admin, ".*", ".*", ".*")
        for node in members:
            wait_port(node.mqtt_port)
            wait_port(node.http_port)
        yield cluster
