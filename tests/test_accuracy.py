"""Accuracy sources: OFA-format checkpoints read exactly as ofa's own code reads them, fitted
predictors that rank what they were fitted on and survive a JSON round trip, and clear errors."""

import json

import numpy as np
import pytest
import torch

from ofahw.errors import ConfigError, UserError
from ofahw.predict.accuracy import OfaAccuracyPredictor
from ofahw.predict.fitted_accuracy import FittedAccuracyPredictor, load_accuracy_data
from ofahw.predict.sources import PRETRAINED, load_accuracy_source
from ofahw.space import get_space
from ofahw.space._ofa import ofa_modules

ofa_modules()  # ofa's package imports torchvision's loaders; ofahw's guard stands in for them


def population(space, n=64, seed=0):
    rng = np.random.default_rng(seed)
    return space.repair(rng.integers(space.xl, space.xu + 1, size=(n, space.n_var)))


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.0", "ofa-mbv3-w1.2", "ofa-proxyless", "ofa-resnet50"])
def test_vectorised_repair_matches_the_canonical_encoding(name):
    space = get_space(name)
    rng = np.random.default_rng(1)
    X = rng.integers(space.xl, space.xu + 1, size=(100, space.n_var))
    assert np.array_equal(space.repair(X), np.array([space.encode(space.decode(x)) for x in X]))


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.0", "ofa-resnet50"])
def test_ofa_nas_checkpoint_predicts_as_ofa_does(tmp_path, name):
    from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder, ResNetArchEncoder

    full = get_space(name)
    if name == "ofa-resnet50":
        encoder = ResNetArchEncoder(image_size_list=list(full.resolutions))
    else:
        encoder = MobileNetArchEncoder(image_size_list=list(full.resolutions))
    torch.manual_seed(0)
    reference = AccuracyPredictor(encoder, device="cpu")
    with torch.no_grad():
        reference.base_acc.fill_(0.7)
        for p in reference.layers.parameters():
            p.mul_(5.0)  # spread the outputs so the comparison means something
    path = tmp_path / "acc.pth"
    torch.save(reference.state_dict(), path)
    space = full.with_resolutions(full.resolutions[::4])
    ours = OfaAccuracyPredictor.load(path, space)
    X = population(space)
    archs = []
    for x in X:
        config = space.decode(x)
        arch = {k: v for k, v in config.items() if k != "r"}
        arch["image_size"] = config["r"]
        archs.append(arch)
    with torch.no_grad():
        expected = reference.predict_acc(archs).numpy()
    assert np.allclose(ours.predict_encoded(X), expected, atol=1e-5)
    assert np.std(expected) > 1e-3


def test_tutorial_checkpoint_predicts_as_the_tutorial_does(tmp_path):
    import importlib.util
    from pathlib import Path

    import ofa

    # ofa.tutorial's package imports torchvision; load the predictor's own module by path.
    spec = importlib.util.spec_from_file_location("ofa_tutorial_acc", Path(ofa.__file__).parent / "tutorial" / "accuracy_predictor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    AccuracyPredictor = module.AccuracyPredictor
    torch.manual_seed(0)
    reference = AccuracyPredictor(pretrained=False, device="cpu")
    path = tmp_path / "acc_predictor.pth"
    torch.save(reference.model.state_dict(), path)
    space = get_space("ofa-mbv3-w1.0").with_resolutions([128, 160, 192, 224])
    X = population(space)
    configs = [space.decode(x) for x in X]
    expected = reference.predict_accuracy([{**c, "r": [c["r"]]} for c in configs]).numpy().ravel()
    assert np.allclose(OfaAccuracyPredictor.load(path, space).predict_encoded(X), expected, atol=1e-5)
    odd = get_space("ofa-mbv3-w1.0").with_resolutions([132])
    with pytest.raises(ConfigError, match="cannot predict resolution \\[132\\]"):
        OfaAccuracyPredictor.load(path, odd).predict_encoded(population(odd, 4))


def ofa_checkpoint(tmp_path, name: str, image_sizes: list[int]):
    """A random-init ``ofa.nas`` predictor whose encoder one-hots ``image_sizes``, saved as a
    checkpoint, and the reference predictor itself."""
    from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder, ResNetArchEncoder

    encoder = (ResNetArchEncoder if name == "ofa-resnet50" else MobileNetArchEncoder)(image_size_list=image_sizes)
    torch.manual_seed(len(image_sizes))
    reference = AccuracyPredictor(encoder, device="cpu")
    with torch.no_grad():  # outputs spread around 0.7 (top-1 fractions), so that 1e-5 is a strict tolerance
        reference.base_acc.fill_(0.7)
        for p in reference.layers.parameters():
            p.mul_(2.0)
    path = tmp_path / f"acc-{len(image_sizes)}.pth.tar"
    torch.save(reference.state_dict(), path)
    return path, reference


def ofa_predictions(reference, space, X) -> np.ndarray:
    archs = [{**{k: v for k, v in c.items() if k != "r"}, "image_size": c["r"]} for c in map(space.decode, X)]
    with torch.no_grad():
        return reference.predict_acc(archs).numpy().reshape(-1)


@pytest.mark.parametrize("name, image_sizes", [
    ("ofa-mbv3-w1.0", [224]),
    ("ofa-mbv3-w1.0", [128, 160, 192, 224]),
    ("ofa-mbv3-w1.0", list(range(160, 225, 16))),
    ("ofa-mbv3-w1.0", list(range(128, 225, 16))),
    ("ofa-mbv3-w1.2", list(range(160, 225, 4))),
    ("ofa-resnet50", [128, 160, 192, 224]),
])
def test_checkpoint_resolution_list_is_inferred_from_its_width(tmp_path, name, image_sizes):
    path, reference = ofa_checkpoint(tmp_path, name, image_sizes)
    space = get_space(name).with_resolutions(image_sizes)
    ours = load_accuracy_source(str(path), space)
    assert ours.resolutions == tuple(image_sizes)
    assert f"resolutions {', '.join(map(str, image_sizes))} (inferred from its input width)" in ours.source
    X = population(space)
    expected = ofa_predictions(reference, space, X)
    assert np.max(np.abs(ours.predict_encoded(X) - expected)) <= 1e-5
    assert np.std(expected) > 1e-3 and np.abs(expected).max() < 2


def test_checkpoint_resolution_list_can_be_stated(tmp_path):
    path, reference = ofa_checkpoint(tmp_path, "ofa-mbv3-w1.0", [176, 208])  # no common list has 2
    space = get_space("ofa-mbv3-w1.0").with_resolutions([176, 208])
    with pytest.raises(UserError, match="--accuracy-resolutions"):
        load_accuracy_source(str(path), space)
    with pytest.raises(UserError, match="lists 3"):
        load_accuracy_source(str(path), space, resolutions=[176, 192, 208])
    ours = load_accuracy_source(str(path), space, resolutions=[208, 176])
    assert "(as stated)" in ours.source
    X = population(space)
    assert np.max(np.abs(ours.predict_encoded(X) - ofa_predictions(reference, space, X))) <= 1e-5


def test_resolutions_a_checkpoint_never_saw_are_refused_or_left_out(tmp_path):
    from ofahw.predict.sources import usable_resolutions

    path, _ = ofa_checkpoint(tmp_path, "ofa-mbv3-w1.0", [128, 160, 192, 224])
    wide = get_space("ofa-mbv3-w1.0").with_resolutions([160, 176, 192])
    source = load_accuracy_source(str(path), wide)
    assert usable_resolutions(source, [160, 176, 192]) == ([160, 192], [176])
    with pytest.raises(ConfigError, match="trained at resolutions 128, 160, 192, 224; it cannot predict resolution \\[176\\]"):
        source.predict_encoded(wide.repair(np.full((1, wide.n_var), 1)))
    narrow = wide.with_resolutions([160, 192])
    X = population(narrow, 8)
    assert np.isfinite(source.restricted(narrow).predict_encoded(X)).all()


def test_wrong_checkpoints_are_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(UserError, match="not an OFA accuracy-predictor checkpoint"):
        OfaAccuracyPredictor.load(path, get_space("ofa-mbv3-w1.0"))
    torch.save({"0.weight": torch.zeros(400, 128), "0.bias": torch.zeros(400), "2.weight": torch.zeros(1, 400)}, path)
    with pytest.raises(UserError, match="for OFA-MBV3 only"):
        OfaAccuracyPredictor.load(path, get_space("ofa-resnet50"))


def synthetic_data(space, n=300, seed=0):
    """Top-1 as a known smooth function of the arch plus noise: more and wider blocks, higher r."""
    X = population(space, n, seed)
    active = space.active_mask(X)
    score = (X * active)[:, :-1].sum(axis=1) + 4 * X[:, -1]
    y = 0.6 + 0.15 * (score - score.min()) / np.ptp(score) + np.random.default_rng(seed).normal(0, 0.002, n)
    return [space.decode(x) for x in X], y


def test_fitted_predictor_ranks_and_round_trips(tmp_path):
    space = get_space("ofa-mbv3-w1.0").with_resolutions([128, 160])
    configs, y = synthetic_data(space)
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({**c, "top1": float(v)}) + "\n" for c, v in zip(configs, y, strict=True)))
    configs, y = load_accuracy_data(path, space)
    predictor = FittedAccuracyPredictor.fit(configs, y, space, trained_on=str(path))
    report = predictor.report
    assert report["chosen"] in ("ridge", "mlp") and report["candidates"][report["chosen"]]["kendall_tau"] > 0.8
    predictor.save(tmp_path / "acc.json")
    loaded = load_accuracy_source(str(tmp_path / "acc.json"), space)
    X = np.array([space.encode(c) for c in configs])
    assert np.allclose(loaded.predict_encoded(X), predictor.predict_encoded(X), atol=1e-5)
    assert "CV Kendall tau" in loaded.source
    pickle_free = json.loads((tmp_path / "acc.json").read_text())
    assert pickle_free["format"] == "ofahw-accuracy-predictor"


def test_bad_accuracy_data(tmp_path):
    space = get_space("ofa-mbv3-w1.0")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ks": [3], "top1": 0.7}\n')
    with pytest.raises(UserError, match="record 1"):
        load_accuracy_data(bad, space)
    bad.write_text("{not json\n")
    with pytest.raises(UserError, match="not JSON lines"):
        load_accuracy_data(bad, space)
    bad.write_text('{"top1": 75}\n')
    with pytest.raises(UserError, match="fraction"):
        load_accuracy_data(bad, space)


def test_pretrained_predictor_offline_says_what_to_supply(monkeypatch, tmp_path):
    monkeypatch.setitem(PRETRAINED, "ofa-mbv3-w1.0", ("missing-predictor.pth", (tmp_path / "nowhere.pth").as_uri()))
    with pytest.raises(UserError, match="--accuracy PATH"):
        load_accuracy_source(None, get_space("ofa-mbv3-w1.0"))
    with pytest.raises(UserError, match="no pretrained accuracy predictor is published"):
        load_accuracy_source(None, get_space("ofa-mbv3-w1.2"))
