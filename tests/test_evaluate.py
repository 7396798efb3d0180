"""`ofahw evaluate` on a generated image folder with a supernet checkpoint the test writes:
BatchNorm recalibration, top-1 bookkeeping, memory-mapped probability tables, resume, bad input."""

import json

import numpy as np
import pytest
import torch
from conftest import make_images

from ofahw.cli.main import main
from ofahw.evaluate import ImageFolder, load_image, recalibrate_batchnorm
from ofahw.space import get_space

SPACE = "ofa-mbv3-w1.0"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("images"), classes=3, per_class=3)


def test_transform_and_folder(images):
    folder = ImageFolder(images)
    assert folder.classes == ["n01", "n02", "n03"] and len(folder) == 9 and list(folder.labels[:3]) == [0, 0, 0]
    x = load_image(folder.samples[0][0], 128)
    assert x.shape == (3, 128, 128) and x.dtype == np.float32
    assert len(ImageFolder(images, limit=3)) == 3 and set(ImageFolder(images, limit=3).labels) == {0, 1, 2}


def test_batchnorm_is_recalibrated(images, weights):
    space = get_space(SPACE)
    config = space.sample(1, np.random.default_rng(0), [128])[0]
    net = space.build_network(config, weights=weights)
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    recalibrate_batchnorm(net, ImageFolder(images), 128, batch_size=4)
    assert not torch.allclose(before, bn.running_mean) and not net.training and bn.num_batches_tracked == 3


def test_cli_evaluate_writes_tables_and_resumes(tmp_path, images, weights, capsys):
    space = get_space(SPACE)
    configs = space.sample(2, np.random.default_rng(1), [128])
    listing = tmp_path / "configs.jsonl"
    listing.write_text("".join(json.dumps(c) + "\n" for c in configs))
    out = tmp_path / "eval"
    argv = ["evaluate", "--space", SPACE, "--configs", str(listing), "--data", str(images), "--weights", str(weights),
            "--batch-size", "4", "--out", str(out), "--json"]
    assert main(argv) == 0
    records = json.loads(capsys.readouterr().out)["records"]
    assert len(records) == 2 and all(0 <= r["top1"] <= r["top5"] <= 1 for r in records)
    index = json.loads((out / "probs" / "index.json").read_text())
    table = np.load(out / "probs" / index[records[0]["config_hash"]]["file"], mmap_mode="r")
    assert table.dtype == np.float16 and table.shape == (9, 1000)
    assert np.allclose(table.astype(np.float32).sum(axis=1), 1.0, atol=1e-2)
    labels = np.load(out / "labels.npy")
    assert np.isclose(records[0]["top1"], np.mean(np.argmax(table, axis=1) == labels))
    assert main(argv) == 0  # a rerun evaluates nothing again
    assert len((out / "accuracy.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    assert main(["accuracy", "fit", "--data", str(out / "accuracy.jsonl"), "--space", SPACE, "--out", str(tmp_path / "a.json")]) == 2
    assert "at least 10" in capsys.readouterr().err  # evaluate's output feeds `accuracy fit` (needs more subnets)


def test_evaluate_bad_input(tmp_path, images, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "--space", SPACE, "--configs", "{}", "--data", str(empty), "--weights", "x", "--out",
                 str(tmp_path / "o")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["evaluate", "--space", SPACE, "--configs", '{"ks": [3]}', "--data", str(images), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not cached" in err or "config" in err
