"""Target files: ``targets/NAME.yaml`` (or a user config folder, or a path) → a ``Target``."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import NamedTuple

import yaml

from ofahw.errors import TargetError
from ofahw.measure.protocol import Protocol
from ofahw.measure.target import Target

# kind -> "module:class", imported only when a target of that kind is used
TARGET_KINDS = {
    "cpu": "ofahw.measure.cpu:OnnxruntimeCpuTarget",
    "openvino": "ofahw.measure.openvino_cpu:OpenVinoCpuTarget",
    "ssh": "ofahw.measure.ssh:SshTarget",
    "tensorrt": "ofahw.measure.gpu:TensorRTTarget",
    "cuda": "ofahw.measure.gpu:TorchCudaTarget",
    "ort-gpu": "ofahw.measure.gpu:OnnxruntimeGpuTarget",
}
BUILTIN = {"cpu": {"kind": "cpu", "description": "this machine's CPU through onnxruntime (built in)"}}
TOP_LEVEL_KEYS = {"name", "kind", "description", "runtime", "protocol", "ssh", "energy", "ray"}
RAY_KEYS = {"resources", "concurrent"}


def search_path() -> list[Path]:
    """Folders searched for ``NAME.yaml``: ./targets, then $OFAHW_TARGETS or ~/.config/ofahw/targets."""
    user = os.environ.get("OFAHW_TARGETS") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")), "ofahw", "targets"
    )
    return [Path("targets"), Path(user)]


def _looks_like_path(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml")) or os.sep in spec


def resolve(spec: str) -> tuple[str, dict, str]:
    """(name, target dict, where it came from) for a target name or a YAML path."""
    if _looks_like_path(spec):
        path = Path(spec)
        if not path.is_file():
            raise TargetError(f"target file {spec} does not exist")
        return _load_file(path)
    for folder in search_path():
        for suffix in (".yaml", ".yml"):
            path = folder / f"{spec}{suffix}"
            if path.is_file():
                return _load_file(path)
    if spec in BUILTIN:
        return spec, dict(BUILTIN[spec]), "built in"
    known = sorted({t.name for t in list_targets()})
    raise TargetError(f"unknown target '{spec}' (known: {', '.join(known)}; or give a path to a YAML file)")


def _load_file(path: Path) -> tuple[str, dict, str]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise TargetError(f"target file {path} is not valid YAML{where}") from None
    except OSError as exc:
        raise TargetError(f"cannot read target file {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise TargetError(f"target file {path} must hold a mapping with at least 'kind'")
    unknown = set(data) - TOP_LEVEL_KEYS
    if unknown:
        raise TargetError(f"target file {path}: unknown keys {sorted(unknown)} (known: {sorted(TOP_LEVEL_KEYS)})")
    if data.get("kind") not in TARGET_KINDS:
        raise TargetError(f"target file {path}: kind must be one of {sorted(TARGET_KINDS)}, got {data.get('kind')!r}")
    for section in ("runtime", "protocol", "ssh"):
        if data.get(section) is not None and not isinstance(data[section], dict):
            raise TargetError(f"target file {path}: '{section}' must be a mapping")
    if data.get("energy") is not None and not isinstance(data["energy"], (bool, dict)):
        raise TargetError(f"target file {path}: 'energy' must be true, false or a mapping (sensor, rails, window_s)")
    if data.get("ray") is not None:
        _check_ray(path, data["ray"])
    return str(data.get("name") or path.stem), data, str(path)


def _check_ray(path: Path, section) -> None:
    """A ``ray`` section: ``resources`` (name -> positive amount; CPU and GPU among them) that the node
    measuring this target must offer, and ``concurrent`` (may measure while other targets of that
    device do)."""
    if not isinstance(section, dict) or set(section) - RAY_KEYS or not isinstance(section.get("resources"), dict):
        raise TargetError(f"target file {path}: 'ray' must be a mapping with 'resources' (a mapping of Ray resource names "
                          f"to amounts) and optionally 'concurrent'")
    for name, amount in section["resources"].items():
        if not isinstance(name, str) or isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
            raise TargetError(f"target file {path}: ray resource {name!r} needs a positive amount, got {amount!r}")
    if not isinstance(section.get("concurrent", False), bool):
        raise TargetError(f"target file {path}: ray 'concurrent' must be true or false")


def load_target(spec: str, accept_host_key: bool = False) -> Target:
    """Build the target named or pointed to by ``spec`` (not yet opened). ``accept_host_key``:
    the user explicitly accepts an SSH target's unknown host key (recorded in its metadata)."""
    name, data, source = resolve(spec)
    module, _, cls = TARGET_KINDS[data["kind"]].partition(":")
    try:
        protocol = Protocol.from_dict(data.get("protocol"))
    except (TypeError, ValueError) as exc:
        raise TargetError(f"target '{name}' ({source}): bad protocol: {exc}") from None
    try:
        target_cls: type[Target] = getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise TargetError(f"target '{name}' of kind {data['kind']} needs the Python package {exc.name} "
                          f"(pip install {exc.name})") from None
    target = target_cls.from_config(name, data, protocol, accept_host_key=accept_host_key)
    target.source = source
    target.description = data.get("description", "")
    energy = data.get("energy")
    target.energy = {} if energy is True else (energy or None)
    target.placement = data.get("ray")
    return target


class TargetEntry(NamedTuple):
    """A target found on the search path (or built in), unopened."""

    name: str
    kind: str
    source: str  # its file, "built in", or why the file is invalid
    placement: dict | None = None  # the file's ``ray`` section


def list_targets() -> list[TargetEntry]:
    """Every target found on the search path, then the built-ins."""
    found: dict[str, TargetEntry] = {}
    for folder in search_path():
        for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
            try:
                name, data, source = _load_file(path)
                found.setdefault(name, TargetEntry(name, data["kind"], source, data.get("ray")))
            except TargetError as exc:
                found.setdefault(path.stem, TargetEntry(path.stem, "invalid", str(exc)))
    for name, data in BUILTIN.items():
        found.setdefault(name, TargetEntry(name, data["kind"], "built in"))
    return list(found.values())
