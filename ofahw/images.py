"""Image folders (``root/<class>/<image>``, classes in sorted order as ImageNet's validation set is
laid out) read with PIL and numpy: OFA's evaluation transform without torchvision."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ofahw.errors import UserError

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG", ".JPG", ".PNG"}


class ImageFolder:
    """(path, label) of every image under ``root``; label = index of its class folder, sorted."""

    def __init__(self, root: str | Path, classes: list[str] | None = None, limit: int | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"image folder {root} does not exist")
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not found:
            raise UserError(f"image folder {root} has no class folders (expected {root}/<class>/<image>)")
        self.classes = classes or found
        unknown = set(found) - set(self.classes)
        if unknown:
            raise UserError(f"image folder {root} has classes the reference folder lacks: {sorted(unknown)[:5]}")
        index = {c: i for i, c in enumerate(self.classes)}
        # absolute paths: a Ray worker reads them from another working directory
        absolute = self.root.resolve()
        self.samples = [(p, index[c]) for c in found for p in sorted((absolute / c).iterdir()) if p.suffix in SUFFIXES]
        if limit:
            self.samples = self._evenly(limit)
        if not self.samples:
            raise UserError(f"image folder {root} holds no images ({', '.join(sorted(SUFFIXES))})")

    def _evenly(self, limit: int) -> list:
        """At most ``limit`` images taken evenly over the folder (so every class is represented)."""
        if limit >= len(self.samples):
            return self.samples
        picks = np.linspace(0, len(self.samples) - 1, limit).round().astype(int)
        return [self.samples[i] for i in picks]

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        return np.array([label for _, label in self.samples], dtype=np.int32)

    def batches(self, resolution: int, batch_size: int):
        """(images (b, 3, r, r) float32, labels (b,)) in folder order."""
        for start in range(0, len(self.samples), batch_size):
            chunk = self.samples[start:start + batch_size]
            images = np.stack([load_image(path, resolution) for path, _ in chunk])
            yield images, np.array([label for _, label in chunk], dtype=np.int64)


def load_image(path: Path, resolution: int) -> np.ndarray:
    """OFA's evaluation transform: shorter side to ceil(r / 0.875), centre crop r, ImageNet
    normalisation; (3, r, r) float32."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            w, h = image.size
            short = int(math.ceil(resolution / 0.875))
            scale = short / min(w, h)
            image = image.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BILINEAR)
            w, h = image.size
            left, top = (w - resolution) // 2, (h - resolution) // 2
            image = image.crop((left, top, left + resolution, top + resolution))
            array = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None
    return ((array - MEAN) / STD).transpose(2, 0, 1)
