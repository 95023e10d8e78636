"""Real Redis topologies on free loopback ports, for tests and benchmarks: master + replica + 3
Sentinels, and a Redis Cluster (3 masters, optionally 1 replica each). Both load the shipped
configs (deploy/redis/*.conf), so the configs operators run are the ones tested."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from keeptrusts_authz.store.keys import Keys
from testing.redis_server import free_port

DEPLOY_REDIS = Path(__file__).resolve().parent.parent / "deploy" / "redis"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (apt-get install redis-server redis-tools)")
    return path


def _wait(check: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}: {last}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too, both below the
    ephemeral range when it allows: a port found free there can be taken by any outgoing
    connection before the node binds it (a node that never started, under a busy test run)."""
    top = _ephemeral_low() - 10000 - 1
    low, high = (20000, top) if top > 21000 else (20000, 45000)
    for _ in range(200):
        port = random.randint(low, high)
        try:
            for p in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class _Node:
    def __init__(self, port: int, conf: Path, extra: list[str], base: Path) -> None:
        self.port = port
        self.dir = base / str(port)
        self.dir.mkdir(parents=True, exist_ok=True)
        # A copy: Sentinel and the cluster rewrite a node's config file (CONFIG REWRITE).
        own = self.dir / conf.name
        shutil.copyfile(conf, own)
        self._args = [_binary("redis-server"), str(own), "--port", str(port)]
        self._args += ["--bind", "127.0.0.1", "--dir", str(self.dir), "--protected-mode", "no"]
        self._args += ["--save", "", "--appendonly", "no", *extra]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(self._args, stdout=log, stderr=subprocess.STDOUT)

    def log_tail(self, lines: int = 20) -> str:
        """The end of the node's own log (why it did not start, e.g. its port taken)."""
        path = self.dir / "redis.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def kill(self) -> None:
        """kill -9: no shutdown, no last write."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class SentinelTopology:
    """1 master + `replicas` replicas (deploy/redis/redis.conf) + 3 Sentinels."""

    MASTER_NAME = "mymaster"

    def __init__(self, replicas: int = 1) -> None:
        self._base = Path(tempfile.mkdtemp(prefix="kt-sentinel-"))
        conf = DEPLOY_REDIS / "redis.conf"
        self.master = _Node(free_port(), conf, [], self._base)
        self.replicas = [
            _Node(
                free_port(), conf, ["--replicaof", "127.0.0.1", str(self.master.port)], self._base
            )
            for _ in range(replicas)
        ]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + "/0"

    def start(self) -> SentinelTopology:
        self.master.start()
        for node in self.replicas:
            node.start()
        _wait(lambda: self.master.client().ping(), "master")
        for node in self.replicas:
            _wait(
                lambda n=node: n.client().info("replication")["master_link_status"] == "up",  # type: ignore[misc]
                "replica link",
            )
        shipped = (DEPLOY_REDIS / "sentinel.conf").read_text(encoding="utf-8")
        for port in self.sentinel_ports:
            conf = self._base / f"sentinel-{port}.conf"
            # `sentinel monitor` must come before the per-master settings of the shipped file.
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self._base}\n"
                f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.master.port} 2\n" + shipped,
                encoding="utf-8",
            )
            self._sentinels.append(
                subprocess.Popen(
                    [_binary("redis-server"), str(conf), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.sentinel_ports:
            _wait(lambda p=port: self._sentinel(p).sentinel_masters(), f"sentinel {port}")  # type: ignore[misc]
        # Every Sentinel knows the replica and the other Sentinels (else a failover stalls).
        _wait(self._settled, "sentinels to discover each other")
        return self

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def _settled(self) -> bool:
        for port in self.sentinel_ports:
            m = self._sentinel(port).sentinel_master(self.MASTER_NAME)
            if int(m["num-slaves"]) < len(self.replicas) or int(m["num-other-sentinels"]) < 2:
                return False
        return True

    def master_port(self) -> int:
        addr = self._sentinel(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(
            self.MASTER_NAME
        )
        return int(addr[1])

    def failover(self) -> None:
        """SENTINEL FAILOVER: promote the replica (the old master is demoted afterwards)."""
        self._sentinel(self.sentinel_ports[0]).execute_command(
            "SENTINEL", "FAILOVER", self.MASTER_NAME
        )

    def stop(self) -> None:
        for proc in self._sentinels:
            proc.terminate()
        for proc in self._sentinels:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        for node in self.replicas:
            node.stop()
        self.master.stop()
        shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> SentinelTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ClusterTopology:
    """A real Redis Cluster: 3 masters (+ 1 replica each when `replicas`), from the shipped
    deploy/redis/cluster.conf. `extra`: redis-server options on top of it for every node (e.g.
    `--cluster-require-full-coverage yes`, the Redis default the shipped file overrides)."""

    def __init__(self, replicas: bool = True, extra: Sequence[str] = ()) -> None:
        self._base = Path(tempfile.mkdtemp(prefix="kt-cluster-"))
        conf = DEPLOY_REDIS / "cluster.conf"
        count = 6 if replicas else 3
        self.nodes = [
            _Node(p, conf, ["--cluster-config-file", f"nodes-{p}.conf", *extra], self._base)
            for p in (_free_cluster_port() for _ in range(count))
        ]
        self.replicas = replicas

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> ClusterTopology:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            try:
                _wait(node.client().ping, f"node {node.port}")
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{node.log_tail()}") from None
        cmd = [_binary("redis-cli"), "--cluster", "create"]
        cmd += [f"127.0.0.1:{n.port}" for n in self.nodes]
        cmd += ["--cluster-replicas", "1" if self.replicas else "0", "--cluster-yes"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        _wait(self._ok, "cluster_state:ok on every node", timeout=30)
        return self

    def _ok(self) -> bool:
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                continue
            info = node.client().cluster("info")
            if info.get("cluster_state") != "ok":
                return False
            if self.replicas and len(self.replicas_of_masters()) < 3:
                return False
        if self.replicas:
            # Synced, not just assigned: a replica that never completed its first sync (the
            # diskless sync waits repl-diskless-sync-delay, 5 s) is never promoted, so a master
            # killed before then stays failed for good (the cluster kill test that hung).
            for replica in self.replicas_of_masters().values():
                node = next(n for n in self.nodes if n.port == replica)
                info = node.client().info("replication")
                if info.get("master_link_status") != "up" or not info.get("slave_repl_offset"):
                    return False
        return True

    def replicas_of_masters(self) -> dict[int, int]:
        """master port -> replica port (as the cluster sees it now)."""
        out: dict[int, int] = {}
        by_id: dict[str, int] = {}
        rows = []
        alive = next(n for n in self.nodes if n.proc is not None and n.proc.poll() is None)
        for line in alive.client().execute_command("CLUSTER", "NODES").splitlines():
            parts = line.split()
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            by_id[parts[0]] = port
            rows.append(parts)
        for parts in rows:
            if "slave" in parts[2] and "fail" not in parts[2] and parts[3] in by_id:
                out[by_id[parts[3]]] = int(parts[1].split("@")[0].rsplit(":", 1)[1])
        return out

    def node_for_slot_key(self, key: str) -> _Node:
        """The master node that holds `key`'s slot now."""
        alive = next(n for n in self.nodes if n.proc is not None and n.proc.poll() is None)
        slot = int(alive.client().execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, master, *_ in alive.client().execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                port = int(master[1])
                return next(n for n in self.nodes if n.port == port)
        raise RuntimeError(f"no master for slot {slot}")

    def organizations_on_distinct_masters(self, count: int = 2) -> list[str]:
        """`count` organization ids whose hash tags (`kt:{org}:`) land on different masters,
        chosen by CLUSTER KEYSLOT over a fixed list of names."""
        by_master: dict[int, str] = {}
        for org in ["acme", "globex", "initech", "umbrella", "hooli", "wonka", "stark", "wayne"]:
            by_master.setdefault(self.node_for_slot_key(Keys(org).ledger).port, org)
        if len(by_master) < count:
            raise RuntimeError(f"only {len(by_master)} masters hold the candidate organizations")
        return list(by_master.values())[:count]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> ClusterTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["ClusterTopology", "SentinelTopology"]
