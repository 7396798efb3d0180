"""Ray: targets measured on the cluster node that offers their resources, and evaluation workers
spread over the cluster. The stages stay unaware of it; nothing here imports Ray until asked to."""

from __future__ import annotations

from ofahw.cluster.connect import connect, nodes_offering
from ofahw.cluster.evaluation import evaluate_on_ray
from ofahw.cluster.placement import PlacedTarget
from ofahw.measure import Target


def place_targets(targets: list[Target], address: str, wait_s: float = 0.0) -> list[Target]:
    """Each target as a :class:`PlacedTarget` on the cluster at ``address``: on the node offering the
    resources of its file's ``ray`` section, else on this process's node (so that it takes turns on
    the device with targets placed there); refuses a target whose resources no node offers."""
    if wait_s < 0:
        from ofahw.errors import UserError

        raise UserError(f"--ray-wait must be zero or more seconds, got {wait_s}")
    ray = connect(address)
    here = ray.get_runtime_context().get_node_id()
    return [PlacedTarget(t, ray, wait_s) if t.placement else PlacedTarget(t, ray, wait_s, node_id=here) for t in targets]


def target_placements(targets: list[tuple[str, str, str, dict | None]], address: str) -> list[dict]:
    """For ``targets`` (name, kind, source, its ``ray`` section), where the cluster at ``address``
    can place each: the nodes offering its resources (host, address, node id)."""
    ray = connect(address)
    return [{"name": name, "kind": kind, "source": source, "resources": (placement or {}).get("resources"),
             "nodes": nodes_offering(ray, placement["resources"]) if placement else None}
            for name, kind, source, placement in targets]


__all__ = ["PlacedTarget", "connect", "evaluate_on_ray", "place_targets", "target_placements"]
