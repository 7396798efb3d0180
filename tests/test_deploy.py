"""From a front to a deployable model: `ofahw pick` and `ofahw export` (weights made here: a
random-init supernet checkpoint saved with torch.save)."""

import csv
import hashlib
import importlib.util
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import RESOLUTION, SPACE, make_images

from ofahw.cli.main import main
from ofahw.errors import UserError
from ofahw.images import ImageFolder
from ofahw.search.pick import pick
from ofahw.space import get_space, recalibrate_batchnorm

COLUMNS = ["rank", "config_hash", "top1", "latency_ms@cpu", "latency_ms@jetson", "top1_source", "latency_ms@cpu_source",
           "latency_ms@jetson_source", "config"]


def write_front(path, members):
    """pareto.csv of ``members``: (top1, cpu ms, jetson ms, config) each."""
    space = get_space(SPACE)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for i, (top1, cpu, jetson, config) in enumerate(members):
            writer.writerow([i, space.config_hash(config), top1, cpu, jetson, "predicted: fitted", "predicted: LUT cpu",
                             "predicted: LUT jetson", json.dumps(config)])
    return path


@pytest.fixture
def front(tmp_path):
    configs = get_space(SPACE).sample(4, np.random.default_rng(0), [RESOLUTION])
    return write_front(tmp_path / "pareto.csv", [(0.70, 5.0, 12.0, configs[0]), (0.74, 7.0, 18.0, configs[1]),
                                                  (0.76, 9.0, 22.0, configs[2]), (0.78, 12.0, 30.0, configs[3])])


def test_pick_under_constraints_and_limits(front):
    (best,) = pick(front, ["latency@jetson<=20"])
    assert best.rank == 1 and best.values["top1"] == 0.74 and best.sources["latency_ms@jetson"] == "predicted: LUT jetson"
    assert pick(front, ["latency@jetson<=20"], by="latency@cpu")[0].rank == 0
    assert pick(front, [])[0].rank == 3  # no constraint: the most accurate


def test_pick_per_limit_and_nothing_met(front):
    with pytest.raises(UserError, match="no member of .* meets latency_ms@jetson <= 10 \\(the closest reaches 12\\)"):
        pick(front, ["latency@jetson<=10"])
    with pytest.raises(UserError, match="meets all of latency_ms@jetson <= 20, top1 >= 0.75 at once"):
        pick(front, ["latency@jetson<=20", "top1>=0.75"])
    with pytest.raises(UserError, match="--limits needs --limits-on"):
        pick(front, [], limits=[10])
    picks = pick(front, [], limits=[13, 20, 25], limits_on="latency@jetson")
    assert [(p.limit, p.rank) for p in picks] == [(13, 0), (20, 1), (25, 2)]


def test_measured_latencies_win_over_predicted(front):
    rows = list(csv.DictReader(front.open()))
    verify = front.with_name("verify.csv")
    with verify.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["config_hash", "predicted_ms", "measured_p10_ms", "predicted_over_measured", "settled",
                         "on_measured_front", "measured_on", "batch", "config"])
        writer.writerow([rows[2]["config_hash"], 22.0, 19.5, 1.13, True, True, "jetson", 1, rows[2]["config"]])
    (best,) = pick(front, ["latency@jetson<=20"])  # the verify.csv beside the front is read
    assert best.rank == 2 and best.values["latency_ms@jetson"] == 19.5
    assert best.sources["latency_ms@jetson"].startswith("measured: p10 on target jetson at batch 1")


def test_cli_pick(front, capsys):
    assert main(["pick", "--front", str(front), "--constraint", "latency@jetson<=20", "--json"]) == 0
    (chosen,) = json.loads(capsys.readouterr().out)["picks"]
    assert chosen["rank"] == 1 and chosen["objectives"]["latency_ms@cpu"] == {"value": 7.0, "source": "predicted: LUT cpu"}
    assert main(["pick", "--front", str(front), "--limits", "13,20", "--limits-on", "latency@jetson"]) == 0
    out = capsys.readouterr().out
    assert "under latency limit 13 ms: rank 0" in out and "under latency limit 20 ms: rank 1" in out
    assert main(["pick", "--front", str(front), "--constraint", "latency<=20"]) == 2
    assert "names no single objective" in capsys.readouterr().err


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("calib"), classes=2, per_class=3, size=lambda i: (150, 160))


def ofa_subnet(weights, config):
    """The subnet as ofa itself builds it from the checkpoint."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    supernet = OFAMobileNetV3(dropout_rate=0, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    supernet.load_state_dict(torch.load(weights, weights_only=True)["state_dict"])
    supernet.set_active_subnet(ks=config["ks"], e=config["e"], d=config["d"])
    return supernet.get_active_subnet(preserve_weight=True).eval()


def test_export_equals_ofas_subnet_and_model_json_says_what_it_holds(tmp_path, weights, front, profiled_lut, capsys):
    out = tmp_path / "models" / "a"
    assert main(["export", "--space", SPACE, "--front", str(front), "--rank", "1", "--weights", str(weights),
                 "--lut", str(profiled_lut), "--format", "onnx,int8", "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    model = json.loads(captured.out)
    assert "BatchNorm statistics are the supernet's" in captured.err and model["batchnorm"] is None and model["warnings"]
    assert "the int8 model is calibrated on random inputs (no --calib)" in captured.err
    config = json.loads(list(csv.DictReader(front.open()))[1]["config"])
    x = np.random.default_rng(5).standard_normal((1, 3, RESOLUTION, RESOLUTION), dtype=np.float32)
    got = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        expected = ofa_subnet(weights, config)(torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() <= 1e-4
    on_disk = json.loads((out / "model.json").read_text())
    assert on_disk == model
    assert model["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert model["config_hash"] == get_space(SPACE).config_hash(config) and model["selected"]["from"] == f"rank 1 of {front}"
    assert model["accuracy"] == {"top1": 0.74, "source": "predicted: fitted"}
    (lat,) = model["latency_predicted"]
    assert lat["target"] == "cpu" and lat["latency_ms"] > 0 and str(profiled_lut) in lat["source"]
    assert model["files"]["onnx"]["checked_against_torch"]["max_abs_diff"] <= 1e-4 * max(1, np.abs(expected).max())
    int8 = onnx.load(str(out / model["files"]["int8"]["file"]))
    assert any(n.op_type == "QuantizeLinear" for n in int8.graph.node) and model["files"]["int8"]["weights"] == "int8, per tensor"
    assert main(["export", "--space", SPACE, "--front", str(front), "--rank", "1", "--weights", str(weights),
                 "--out", str(out)]) == 2
    assert "already holds an exported model" in capsys.readouterr().err


def test_batchnorm_recalibration_changes_running_statistics_only(weights, images):
    space = get_space(SPACE)
    config = space.sample(1, np.random.default_rng(2), [RESOLUTION])[0]
    net = space.build_network(config, weights=weights)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    recalibrate_batchnorm(net, ImageFolder(images), RESOLUTION, batch_size=4)
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed)
    assert any(k.endswith("running_mean") for k in changed)


def test_export_with_calibration_and_measurement(tmp_path, weights, images, profiled_lut, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = get_space(SPACE).sample(1, np.random.default_rng(3), [RESOLUTION])[0]
    assert main(["export", "--space", SPACE, "--config", json.dumps(config), "--weights", str(weights), "--calib", str(images),
                 "--int8-images", "4", "--format", "onnx,int8", "--lut", str(profiled_lut), "--target", "cpu", "--measure",
                 "--out", "models/b"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "BatchNorm recalibrated on 6 images" in out and "measured now on target cpu: p10" in out and "predicted/measured" in out
    assert f"model.int8.onnx (int8): calibrated on 4 images from {images}" in out and "WARNING" not in captured.err
    model = json.loads((tmp_path / "models" / "b" / "model.json").read_text())
    assert model["batchnorm"]["images"] == 6 and model["measured"]["n"] > 0 and model["measured"]["predicted_over_measured"] > 0
    assert model["files"]["int8"]["calibration"].startswith(f"4 images from {images}") and not model["warnings"]


@pytest.mark.parametrize("argv, message", [
    (["--rank", "0", "--format", "onnx,tensorrt"], "needs trtexec on PATH or the tensorrt Python package"),
    (["--rank", "0", "--format", "onnx,tflite"], "--format takes a list of onnx, int8, tensorrt"),
    (["--rank", "9"], "--rank 9 is not on"),
    ([], "--front needs --rank N"),
])
def test_export_bad_input_writes_nothing(tmp_path, weights, front, capsys, argv, message):
    if "tensorrt" in " ".join(argv) and (shutil.which("trtexec") or importlib.util.find_spec("tensorrt")):
        pytest.skip("TensorRT is at hand here")
    out = tmp_path / "models" / "c"
    assert main(["export", "--space", SPACE, "--front", str(front), "--weights", str(weights), *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_export_refuses_a_count_below_one(tmp_path, weights, front, capsys):
    out = tmp_path / "models" / "e"
    with pytest.raises(SystemExit) as exc:
        main(["export", "--space", SPACE, "--front", str(front), "--rank", "0", "--weights", str(weights), "--int8-images", "0",
              "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--int8-images: must be 1 or more, got '0'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_corrupt_weights_are_one_line_and_nothing_written(tmp_path, front, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "models" / "d"
    assert main(["export", "--space", SPACE, "--front", str(front), "--rank", "0", "--weights", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is not a loadable torch checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "models").exists()
