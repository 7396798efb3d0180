"""Where a search's accuracy comes from: a fitted predictor (.json), an OFA-format predictor
checkpoint, or, by default, the space's pretrained OFA predictor (downloaded on first use)."""

from __future__ import annotations

from pathlib import Path

from ofahw._io import cache_dir
from ofahw.errors import UserError
from ofahw.predict.accuracy import OfaAccuracyPredictor
from ofahw.predict.fitted_accuracy import FittedAccuracyPredictor
from ofahw.space import Space
from ofahw.space.weights import fetch_cached

# MIT publishes one pretrained accuracy predictor: OFA's tutorial MLP for OFA-MBV3 w1.0.
PRETRAINED = {"ofa-mbv3-w1.0": ("ofa_mbv3_w1.0_acc_predictor.pth",
                                "https://raw.githubusercontent.com/han-cai/files/master/ofa/acc_predictor.pth")}


def load_accuracy_source(spec: str | None, space: Space, download: bool = True, resolutions=None):
    """An object with ``predict_encoded(X) -> top-1``, ``source``, ``resolutions`` (those it can
    predict, None for any) and ``restricted(space)``, for encodings of ``space``. ``resolutions``
    states the list an OFA checkpoint was trained with (else inferred from its input width)."""
    if spec is None:
        if space.name not in PRETRAINED:
            raise UserError(f"no pretrained accuracy predictor is published for {space.name}; pass --accuracy FILE "
                            "(an OFA predictor checkpoint, or one fitted with `ofahw accuracy fit`)")
        name, url = PRETRAINED[space.name]
        path = fetch_cached(cache_dir("predictors") / name, url, download, f"OFA's pretrained accuracy predictor for "
                            f"{space.name} ({name})", "--accuracy PATH")
        return OfaAccuracyPredictor.load(path, space, resolutions)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"accuracy source {spec} is not a file (a fitted predictor .json or an OFA predictor checkpoint)")
    if path.suffix == ".json":
        if resolutions:
            raise UserError("--accuracy-resolutions is for OFA predictor checkpoints; a fitted predictor records its own")
        return FittedAccuracyPredictor.load(path, space)
    return OfaAccuracyPredictor.load(path, space, resolutions)


def usable_resolutions(source, resolutions: list[int]) -> tuple[list[int], list[int]]:
    """``resolutions`` split into those ``source`` can predict and those it cannot."""
    if source.resolutions is None:
        return list(resolutions), []
    return [r for r in resolutions if r in source.resolutions], [r for r in resolutions if r not in source.resolutions]
