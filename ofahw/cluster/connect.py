"""Joining a Ray cluster, and what its nodes offer. Ray is imported here, only when ``--ray`` is asked for."""

from __future__ import annotations

import socket

from ofahw.errors import UserError

INSTALL = "pip install 'ray>=2.9' (scripts/setup.sh installs it)"


def require_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs the Python package ray: {INSTALL}") from None
    return ray


def connect(address: str = "auto"):
    """Join the cluster at ``address`` and return the ``ray`` module: ``auto`` (the cluster that
    ``ray start`` runs on this machine), ``local`` (a cluster of this machine alone, for this
    command only), or HOST:PORT of a head node's GCS."""
    if address not in ("auto", "local"):
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"--ray takes auto, local or HOST:PORT, got {address!r}")
    ray = require_ray()
    if ray.is_initialized():
        return ray
    options = {"logging_level": "error", "log_to_driver": False, "configure_logging": True}
    if address == "local":
        ray.init(include_dashboard=False, **options)
        return ray
    if address != "auto":
        _check_reachable(host, int(port))
    try:
        ray.init(address=address, **options)
    except ConnectionError as exc:
        hint = ("start one with `ray start --head`, or pass --ray local for a cluster of this machine alone"
                if address == "auto" else "is its head node running?")
        raise UserError(f"no Ray cluster at {address}: {str(exc).splitlines()[0]} ({hint})") from None
    return ray


def _check_reachable(host: str, port: int, timeout: float = 5.0) -> None:
    """Ray retries an unreachable head node for minutes; one TCP connection says it at once."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"cannot reach a Ray head node at {host}:{port}: {exc.strerror or exc}") from None


def placement_options(resources: dict) -> dict:
    """Ray actor options asking for ``resources`` (a target file's ``ray.resources``; ``CPU`` and
    ``GPU`` become Ray's num_cpus / num_gpus). A measuring actor takes no CPU unless asked."""
    custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
    return {"num_cpus": resources.get("CPU", 0), "num_gpus": resources.get("GPU", 0), **({"resources": custom} if custom else {})}


def nodes_offering(ray, resources: dict) -> list[dict]:
    """The live nodes whose total resources hold ``resources``: host name, address, node id."""
    return [{"host": n.get("NodeManagerHostname"), "address": n.get("NodeManagerAddress"), "node_id": n["NodeID"]}
            for n in ray.nodes()
            if n.get("Alive") and all(n.get("Resources", {}).get(k, 0) >= v for k, v in resources.items())]


def require_offered(ray, resources: dict, what: str) -> None:
    """One line naming what no live node offers (no node at all offers the resource, or none offers enough)."""
    if nodes_offering(ray, resources):
        return
    totals = ray.cluster_resources()
    missing = [k for k in resources if k not in totals]
    offered = sorted(k for k in totals if not k.startswith(("node:", "memory", "object_store_memory")))
    if missing:
        raise UserError(f"{what} needs Ray resource {', '.join(repr(k) for k in missing)}, which no node of the cluster "
                        f"offers (offered: {', '.join(offered)})")
    raise UserError(f"{what} needs {resources} on one node, and no node of the cluster offers that much")


def get(ray, ref, timeout: float | None = None):
    """``ray.get`` with an error of ofahw's own raised in a worker raised here as itself (its one
    line), not as Ray's task error with the worker's traceback."""
    try:
        return ray.get(ref, timeout=timeout)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, UserError):
            raise type(exc.cause)(str(exc.cause)) from None
        raise


def check_version(node: dict, who: str) -> None:
    """A worker's node (as :func:`this_node` and the ofahw version it runs) must run this ofahw version."""
    here = __import__("ofahw").__version__
    if node["version"] != here:
        raise UserError(f"{who} {node['host']} runs ofahw {node['version']}, this driver {here}: install the same version "
                        "on every node")


def death_reason(exc) -> str:
    """Why a Ray actor died, in one line (Ray's message says it in a line with "because")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if "because" in line), lines[0] if lines else type(exc).__name__)


def this_node(ray) -> dict:
    """Where the calling Ray worker runs: host name, address, node id."""
    return {"host": socket.gethostname(), "address": ray.util.get_node_ip_address(),
            "node_id": ray.get_runtime_context().get_node_id()}
