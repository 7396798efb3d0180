"""Search spaces over the ``ofa`` package's supernets: sample, validate, encode, cut into parts."""

from __future__ import annotations

from ofahw.errors import UserError
from ofahw.space._base import Gene, Space
from ofahw.space._mobile import MobileNetV3Space, ProxylessSpace
from ofahw.space._parts import Part, build_part, part_cost
from ofahw.space._resnet import ResNet50Space
from ofahw.space.batchnorm import recalibrate_batchnorm

_FULL = tuple(range(128, 225, 4))  # OFA's elastic-resolution range
_SPACES = {
    "ofa-mbv3-w1.0": lambda: MobileNetV3Space(1.0, _FULL),
    "ofa-mbv3-w1.2": lambda: MobileNetV3Space(1.2, tuple(range(160, 225, 4))),
    "ofa-proxyless": lambda: ProxylessSpace(_FULL),
    "ofa-resnet50": lambda: ResNet50Space(_FULL),
}
_cache: dict[str, Space] = {}


def space_names() -> list[str]:
    return list(_SPACES)


def get_space(name: str, resolutions: tuple[int, ...] | None = None) -> Space:
    """The space registered as ``name`` (one shared instance per process), or with ``resolutions``
    where they differ from the registered ones."""
    if name not in _SPACES:
        raise UserError(f"unknown space '{name}' (known: {', '.join(_SPACES)})")
    if name not in _cache:
        _cache[name] = _SPACES[name]()
    space = _cache[name]
    return space if resolutions is None or tuple(resolutions) == space.resolutions else space.with_resolutions(resolutions)


__all__ = ["Gene", "Part", "Space", "MobileNetV3Space", "ProxylessSpace", "ResNet50Space",
           "build_part", "part_cost", "get_space", "recalibrate_batchnorm", "space_names"]
