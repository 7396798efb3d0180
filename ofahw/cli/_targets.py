"""Targets as a measuring command opens them: loaded by name or file and, with ``--ray``, placed on
the cluster node their file's ``ray`` section names (without one: this process's node)."""

from __future__ import annotations

from collections.abc import Callable

from ofahw.errors import UserError
from ofahw.measure import Target, load_target


def placement(args) -> Callable[[Target], Target] | None:
    """None where the command measures here; with ``--ray``, what places one target on the cluster."""
    if args.ray is None:
        return None
    from ofahw.cluster import place_targets

    return lambda target: place_targets([target], args.ray, args.ray_wait)[0]


def load_targets(specs: list[str], args, accept_host_key: bool = False) -> list[Target]:
    """The targets ``specs`` name, placed on the cluster with ``--ray``."""
    targets = [load_target(spec, accept_host_key) for spec in specs]
    place = placement(args)
    return [place(t) for t in targets] if place else targets


def refuse_unused_ray(args, measuring: bool, flag: str) -> None:
    """``--ray`` places what ``flag`` measures: given without it, it would be silently ignored."""
    if args.ray is not None and not measuring:
        raise UserError(f"--ray places the target that {flag} measures on the Ray cluster; without {flag} nothing is measured")
