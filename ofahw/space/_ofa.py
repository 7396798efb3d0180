"""Import of the ``ofa`` package's network code without torchvision.

``ofa.utils`` star-imports ``ofa.utils.my_dataloader``, which imports torchvision for ImageNet
data loaders that ofahw never uses. Where torchvision is missing or broken (a CPU-only torch
beside a CUDA torchvision fails at import), an empty stand-in for that one data-loader module is
registered first, so the network code imports and nothing else changes.
"""

from __future__ import annotations

import importlib
import sys
import types
from functools import cache


@cache
def ofa_modules() -> types.SimpleNamespace:
    """The ofa modules ofahw uses, imported once."""
    if "ofa.utils.my_dataloader" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except Exception:
            sys.modules["ofa.utils.my_dataloader"] = types.ModuleType("ofa.utils.my_dataloader")
    networks = importlib.import_module("ofa.imagenet_classification.elastic_nn.networks")
    return types.SimpleNamespace(
        networks=networks,
        static=importlib.import_module("ofa.imagenet_classification.networks"),
        layers=importlib.import_module("ofa.utils.layers"),
        pytorch_modules=importlib.import_module("ofa.utils.pytorch_modules"),
    )
