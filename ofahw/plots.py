"""Figures ofahw writes (fronts, ensembles, drift histories): drawn off-screen, saved atomically."""

from __future__ import annotations

import io
from pathlib import Path

from ofahw._io import atomic_write_bytes


def pyplot():
    """matplotlib's pyplot on the off-screen Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write ``fig`` as a PNG at ``path`` atomically and free it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())
