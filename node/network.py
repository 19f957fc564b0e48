"""A whole exchange network on one machine: axes, agency nodes, one dev PKI, configs, keys and tokens.

Used by ``lienthong demo``, the end-to-end tests and the exchange benchmark: :func:`write_network` writes
every node's config and keys under one directory, :class:`RunningNetwork` starts each node as its own
process (``lienthong serve``) on loopback and stops them.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from node.errors import NodeError


@dataclass(frozen=True)
class AxisSpec:
    node_id: str
    trace_organ_id: str  # the code the axis writes into TraceHeader
    parent: str | None = None  # the node id of the axis above


@dataclass(frozen=True)
class AgencySpec:
    node_id: str
    axis: str
    organisations: tuple[tuple[str, str], ...]  # (code, name)


@dataclass(frozen=True)
class NodePlan:
    node_id: str
    role: str
    config: Path
    url: str
    port: int
    token: str
    organisations: tuple[str, ...] = ()


@dataclass
class Network:
    directory: Path
    nodes: dict[str, NodePlan] = field(default_factory=dict)

    def node(self, node_id: str) -> NodePlan:
        return self.nodes[node_id]

    def node_serving(self, code: str) -> NodePlan:
        for plan in self.nodes.values():
            if code in plan.organisations:
                return plan
        raise KeyError(code)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def write_node_key(path: Path) -> str:
    """Write a new Ed25519 node key (PKCS#8 PEM, owner-only); return its public key in base64."""
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def write_network(
    directory: Path,
    axes: Sequence[AxisSpec],
    agencies: Sequence[AgencySpec],
    *,
    pki_base_url: str,
    host: str = "127.0.0.1",
    timestamps: bool = True,
    revocation: str = "soft-fail",
    poll_interval: float = 0.5,
    checkpoint_interval: float = 300.0,
    extra: dict[str, dict[str, Any]] | None = None,
) -> Network:
    """Write the dev PKI, keys, configs and an admin token of every node under ``directory``."""
    from node.config import load_settings
    from node.runtime import NodeRuntime
    from node.tokens import Role, create_token
    from signing.devpki import create_dev_pki

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    organs = [o for a in agencies for o in a.organisations]
    pki = create_dev_pki(directory / "pki", organs, base_url=pki_base_url, overwrite=True)
    ports = {node_id: free_port(host) for node_id in [a.node_id for a in axes] + [a.node_id for a in agencies]}
    url = {n: f"http://{host}:{p}" for n, p in ports.items()}
    public: dict[str, str] = {}
    for node_id in ports:
        (directory / node_id).mkdir(exist_ok=True)
        public[node_id] = write_node_key(directory / node_id / "node-key.pem")

    registry = [
        {
            "code": code,
            "name": name,
            "certificates": [str(pki.organ(code).organisation.path)],
        }
        for code, name in organs
    ]
    trust = {
        "roots": [str(pki.root.path)],
        "intermediates": [str(pki.issuing_ca.path)],
        "revocation": revocation,
    }

    def below(axis_id: str) -> list[str]:
        codes = [c for a in agencies if a.axis == axis_id for c, _ in a.organisations]
        for child in axes:
            if child.parent == axis_id:
                codes.extend(below(child.node_id))
        return codes

    configs: dict[str, dict[str, Any]] = {}
    for axis in axes:
        nodes = [
            {"id": a.node_id, "public_key": public[a.node_id], "organisations": [c for c, _ in a.organisations]}
            for a in agencies
            if a.axis == axis.node_id
        ]
        nodes += [
            {"id": c.node_id, "public_key": public[c.node_id], "organisations": below(c.node_id)}
            for c in axes
            if c.parent == axis.node_id
        ]
        config: dict[str, Any] = {
            "role": "axis",
            "node_id": axis.node_id,
            "trace_organ_id": axis.trace_organ_id,
            "nodes": nodes,
        }
        if axis.parent:
            config["upstream"] = {"url": url[axis.parent], "node_id": axis.parent, "public_key": public[axis.parent]}
        configs[axis.node_id] = config
    for agency in agencies:
        organisations = []
        for code, name in agency.organisations:
            organ = pki.organ(code)
            organisations.append(
                {
                    "code": code,
                    "name": name,
                    "seal": {
                        "kind": "pkcs12",
                        "key": str(organ.organisation.p12_path),
                        "passphrase_file": str(pki.passphrase_path),
                    },
                }
            )
        configs[agency.node_id] = {
            "role": "agency",
            "node_id": agency.node_id,
            "organisations": organisations,
            "upstream": {"url": url[agency.axis], "node_id": agency.axis, "public_key": public[agency.axis]},
        }
        if timestamps:
            configs[agency.node_id]["timestamp_url"] = pki.urls.tsa

    network = Network(directory)
    for node_id, config in configs.items():
        config.update(
            {
                "host": host,
                "port": ports[node_id],
                "data_dir": str(directory / node_id),
                "node_key": str(directory / node_id / "node-key.pem"),
                "agencies": registry,
                "trust": trust,
                "delivery": {"poll_interval": poll_interval, "initial_backoff": 0.2, "max_backoff": 5.0},
                "checkpoint_interval": checkpoint_interval,
            }
        )
        config.update((extra or {}).get(node_id, {}))
        path = directory / node_id / "node.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        runtime = NodeRuntime(load_settings(path))
        try:
            token = create_token(runtime, "admin", Role.ADMIN)
        finally:
            runtime.close()
        orgs = tuple(o["code"] for o in config.get("organisations", ()))
        network.nodes[node_id] = NodePlan(node_id, config["role"], path, url[node_id], ports[node_id], token, orgs)
    return network


class RunningNetwork:
    """The nodes of a :class:`Network`, each in its own ``lienthong serve`` process."""

    def __init__(self, network: Network, *, log_dir: Path | None = None) -> None:
        self.network = network
        self.log_dir = log_dir or network.directory
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, node_ids: Iterable[str] | None = None, *, wait: bool = True) -> None:
        ids = list(node_ids) if node_ids is not None else list(self.network.nodes)
        for node_id in ids:
            plan = self.network.nodes[node_id]
            log = (self.log_dir / f"{node_id}.log").open("ab")
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.processes[node_id] = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", "node.cli", "serve", "--config", str(plan.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            log.close()
        if wait:
            for node_id in ids:
                self.wait_ready(node_id)

    def wait_ready(self, node_id: str, timeout: float = 60.0) -> None:
        plan = self.network.nodes[node_id]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes.get(node_id)
            if process is not None and process.poll() is not None:
                raise NodeError(f"node {node_id} exited with {process.returncode}; see {self.log_dir / node_id}.log")
            try:
                if httpx.get(f"{plan.url}/api/v1/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise NodeError(f"node {node_id} did not answer within {timeout:.0f}s; see {self.log_dir / node_id}.log")

    def kill(self, node_id: str) -> None:
        """SIGKILL: no chance to finish anything (what a crash or power cut does)."""
        process = self.processes.pop(node_id, None)
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self, node_id: str) -> None:
        process = self.processes.pop(node_id, None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def stop_all(self) -> None:
        """SIGTERM every node at once, then wait for each (SIGKILL after 10 s)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for node_id in list(self.processes):
            self.stop(node_id)

    def __enter__(self) -> RunningNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
