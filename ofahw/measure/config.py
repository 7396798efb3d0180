"""Target files: ``targets/NAME.yaml`` (or a user config folder, or a path) → a ``Target``."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

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
TOP_LEVEL_KEYS = {"name", "kind", "description", "runtime", "protocol", "ssh", "energy"}


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
    known = sorted({name for name, _, _ in list_targets()})
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
    return str(data.get("name") or path.stem), data, str(path)


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
    return target


def list_targets() -> list[tuple[str, str, str]]:
    """(name, kind, source) of every target found on the search path, then the built-ins."""
    found: dict[str, tuple[str, str, str]] = {}
    for folder in search_path():
        for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
            try:
                name, data, source = _load_file(path)
                found.setdefault(name, (name, data["kind"], source))
            except TargetError as exc:
                found.setdefault(path.stem, (path.stem, "invalid", str(exc)))
    for name, data in BUILTIN.items():
        found.setdefault(name, (name, data["kind"], "built in"))
    return list(found.values())
