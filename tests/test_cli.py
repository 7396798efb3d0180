import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import RESOLUTION, SPACE, copy_lut, fast_target_file, write_yaml

from ofahw.cli.main import main
from ofahw.space import get_space


@pytest.fixture
def workdir(tmp_path, monkeypatch, profiled_lut):
    monkeypatch.chdir(tmp_path)
    fast_target_file(tmp_path, "cpu")
    copy_lut(profiled_lut, tmp_path / "lut" / "cpu.csv")
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def config_json(r=RESOLUTION, seed=0):
    return json.dumps(get_space(SPACE).sample(1, np.random.default_rng(seed), [r])[0])


def test_profile_command_end_to_end(workdir, capsys):
    code, out, err = run(capsys, "profile", "--target", "cpu", "--space", SPACE, "--resolutions", "128",
                         "--samples", "5", "--out", "lut/new.csv", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["statistic"] == "p10" and payload["measured"] > 5 and payload["report"]["chosen"]
    code, out, err = run(capsys, "profile", "--target", "cpu", "--space", SPACE, "--resolutions", "128",
                         "--samples", "5", "--out", "lut/new.csv")
    assert code == 0 and "nothing to measure" in err and "MAPE" in out


def test_predict_json_and_measure(workdir, capsys):
    code, out, err = run(capsys, "predict", "--lut", "lut/cpu.csv", "--config", config_json(), "--json")
    assert code == 0, err
    payload = json.loads(out)
    (lat,) = payload["latencies"]
    assert lat["latency_ms"] > 0 and lat["statistic"] == "p10" and lat["target"] == "cpu" and payload["accuracy"] is None
    (workdir / "config.json").write_text(config_json(seed=1))
    code, out, err = run(capsys, "predict", "--lut", "lut/cpu.csv", "--config", "config.json", "--measure", "--target", "cpu")
    assert code == 0, err
    assert "predicted" in out and "measured now on target cpu" in out and "predicted/measured" in out


def ofa_checkpoint_124(path):
    """A random-init ofa.nas predictor trained (as it were) at 128, 160, 192, 224: 124 inputs."""
    import torch
    from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder

    from ofahw.space._ofa import ofa_modules

    ofa_modules()
    torch.manual_seed(0)
    reference = AccuracyPredictor(MobileNetArchEncoder(image_size_list=[128, 160, 192, 224]), device="cpu")
    with torch.no_grad():
        reference.base_acc.fill_(0.7)
    torch.save(reference.state_dict(), path)
    return reference


def test_predict_accuracy_and_latency_of_a_subnet(workdir, capsys):
    reference = ofa_checkpoint_124(workdir / "acc.pth.tar")
    shutil.copy(workdir / "lut" / "cpu.csv", workdir / "lut" / "other.csv")
    other = json.loads((workdir / "lut" / "cpu.json").read_text())
    other["target"]["name"] = "other"
    (workdir / "lut" / "other.json").write_text(json.dumps(other))
    config = json.loads(config_json())
    code, out, err = run(capsys, "predict", "--accuracy", "acc.pth.tar", "--lut", "lut/cpu.csv", "--lut", "lut/other.csv",
                         "--config", json.dumps(config), "--json")
    assert code == 0, err
    payload = json.loads(out)
    arch = {**{k: v for k, v in config.items() if k != "r"}, "image_size": config["r"]}
    import torch

    with torch.no_grad():
        expected = float(reference.predict_acc([arch]).reshape(-1)[0])
    assert abs(payload["accuracy"]["top1"] - expected) <= 1e-5
    assert "resolutions 128, 160, 192, 224 (inferred from its input width)" in payload["accuracy"]["source"]
    assert [lat["target"] for lat in payload["latencies"]] == ["cpu", "other"]
    code, out, err = run(capsys, "predict", "--accuracy", "acc.pth.tar", "--space", SPACE, "--config", json.dumps(config))
    assert code == 0, err
    assert "top-1" in out and "latency" not in out
    code, out, err = run(capsys, "predict", "--accuracy", "acc.pth.tar", "--config", json.dumps(config))
    assert code == 2 and "--space" in err
    at_176 = {**config, "r": 176}
    code, out, err = run(capsys, "predict", "--accuracy", "acc.pth.tar", "--space", SPACE, "--config", json.dumps(at_176))
    assert code == 2 and "cannot predict resolution [176]" in err


def test_search_with_a_real_ofa_checkpoint(workdir, capsys):
    ofa_checkpoint_124(workdir / "acc.pth.tar")
    code, out, err = run(capsys, "search", "--lut", "lut/cpu.csv", "--accuracy", "acc.pth.tar", "--pop-size", "8",
                         "--generations", "2", "--out", "runs/a", "--no-progress", "--json")
    assert code == 0, err
    assert "resolutions 128, 160, 192, 224 (inferred" in json.loads(out)["objectives"][0]["source"]
    code, out, err = run(capsys, "search", "--lut", "lut/cpu.csv", "--accuracy", "acc.pth.tar", "--accuracy-resolutions",
                         "160,176,192,208", "--pop-size", "8", "--generations", "2", "--out", "runs/b", "--no-progress")
    assert code == 2 and "none of those the LUTs profiled" in err


def test_targets_commands(workdir, capsys):
    code, out, _ = run(capsys, "targets", "list", "--json")
    assert code == 0 and any(t["name"] == "cpu" for t in json.loads(out)["targets"])
    code, out, _ = run(capsys, "targets", "check", "--target", "cpu")
    assert code == 0 and "OK" in out and "probe" in out


def test_lut_export_import_commands(workdir, capsys):
    code, out, err = run(capsys, "lut", "export", "--lut", "lut/cpu.csv", "--out", "ofa.yaml")
    assert code == 0 and "OFA format" in out, err
    code, out, err = run(capsys, "lut", "import", "--yaml", "ofa.yaml", "--space", SPACE, "--target-name", "phone",
                         "--out", "lut/phone.csv", "--json")
    assert code == 0 and json.loads(out)["entries"] > 50, err


BAD_INPUTS = [
    (["profile", "--target", "nosuch"], "unknown target 'nosuch'"),
    (["profile", "--target", "cpu", "--space", "ofa-mbv9"], "unknown space"),
    (["profile", "--target", "targets/bad.yaml"], "not valid YAML"),
    (["profile", "--target", "cpu", "--resolutions", "12x"], "--resolutions must be integers"),
    (["profile", "--target", "cpu", "--resolutions", "300-400"], "selects none"),
    (["profile", "--target", "cpu", "--budget", "soon"], "--budget must look like"),
    (["profile", "--target", "cpu", "--resolutions", "128", "--out", "blocker/lut.csv"], "not a writable directory"),
    (["profile", "--target", "cpu", "--threads"], None),  # argparse: unknown option
    (["predict", "--lut", "lut/cpu.csv", "--config", '{"ks": [3], "e": [3], "d": [2], "r": 128}'], "list of 20"),
    (["predict", "--lut", "lut/cpu.csv", "--config", "{oops"], "not valid JSON"),
    (["predict", "--lut", "lut/cpu.csv", "--config", "missing.json"], "neither"),
    (["predict", "--lut", "lut/missing.csv", "--config", "{}"], "does not exist"),
    (["predict", "--lut", "lut/broken.csv", "--config", "{}"], "does not match its metadata"),
    (["predict", "--lut", "lut/cpu.csv", "--config", "CONFIG_AT_160"], "resolution 160 was not profiled"),
    (["lut", "import", "--yaml", "missing.yaml", "--target-name", "x", "--out", "lut/x.csv"], "does not exist"),
    (["lut", "export", "--lut", "lut/cpu.csv", "--out", "blocker/ofa.yaml"], "not a writable directory"),
    # an output that is one of the inputs (or its sidecar) is refused, whatever the command
    (["lut", "export", "--lut", "lut/cpu.csv", "--out", "lut/cpu.csv"], "is one of this command's inputs"),
    (["lut", "export", "--lut", "lut/cpu.csv", "--out", "lut/cpu.json"], "is one of this command's inputs"),
    (["lut", "import", "--yaml", "lut/cpu.json", "--target-name", "x", "--out", "lut/cpu.csv"], "is one of this command's inputs"),
    (["report", "--lut", "lut/cpu.csv", "--out", "lut/cpu.json"], "is one of this command's inputs"),
    (["accuracy", "fit", "--data", "lut/cpu.json", "--space", SPACE, "--out", "lut/cpu.json"], "is one of this command's inputs"),
    (["search", "--lut", "lut/cpu.csv", "--out", "lut", "--accuracy", "lut/summary.json"], "is one of this command's inputs"),
    (["ensemble", "--front", "lut/pareto.csv", "--probs", "p", "--mode", "serial", "--out", "lut"],
     "is one of this command's inputs"),
    (["profile", "--target", "cpu", "--resolutions", ""], "--resolutions is empty"),
    (["profile", "--target", "cpu", "--budget", "0"], "--budget must be more than zero"),
    (["schedule", "install", "--target", "nosuch", "--lut", "lut/cpu.csv"], "unknown target 'nosuch'"),
    (["schedule", "install", "--target", "targets/two.yaml", "--lut", "lut/cpu.csv"], "threads 2 (LUT: 1)"),
    (["schedule", "install", "--target", "cpu", "--lut", "lut/cpu.csv", "--every", "99 * * * *"], "minute field '99'"),
    (["search", "--lut", "lut/cpu.csv", "--accuracy", "acc.pth.tar", "--constraint", "latency<=0.001", "--pop-size", "8",
      "--generations", "2", "--out", "runs/none", "--no-progress"], "evaluated reaches latency_ms@cpu"),
    (["reprofile", "--lut", "lut/cpu.csv", "--target", "cpu", "--confirm-after", "-5"], None),
    (["search", "--lut", "lut/cpu.csv", "--reference-point=nan,inf", "--out", "runs/x"], None),
]


@pytest.mark.parametrize("argv, message", BAD_INPUTS)
def test_bad_input_gives_one_line_and_exit_2(workdir, capsys, argv, message):
    write_yaml(workdir / "targets" / "bad.yaml", "kind: [cpu\n")
    (workdir / "blocker").write_text("a file, not a folder")
    shutil.copy(workdir / "lut" / "cpu.csv", workdir / "lut" / "broken.csv")
    shutil.copy(workdir / "lut" / "cpu.json", workdir / "lut" / "broken.json")
    (workdir / "lut" / "broken.csv").write_text((workdir / "lut" / "broken.csv").read_text() + "block,x\n")
    argv = [config_json(r=160) if a == "CONFIG_AT_160" else a for a in argv]
    write_yaml(workdir / "targets" / "two.yaml", "kind: cpu\nruntime: {threads: 2}\n")
    (workdir / "lut" / "pareto.csv").write_text("config_hash,latency_ms@cpu\n")
    (workdir / "lut" / "summary.json").write_text("{}")
    ofa_checkpoint_124(workdir / "acc.pth.tar")
    crontab = _crontab_now()
    before = {p: p.read_bytes() for p in (workdir / "lut").iterdir()}
    if message is None:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        return
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if "error" in line]  # progress lines may come before it
    assert len(lines) == 1 and lines[0] == err.strip().splitlines()[-1], err
    assert lines[0].startswith("ofahw: error:") and message in lines[0], err
    assert {p: p.read_bytes() for p in (workdir / "lut").iterdir()} == before  # nothing overwritten
    assert _crontab_now() == crontab  # nothing scheduled
    assert not [f for f in (workdir / "runs").rglob("*") if f.is_file()] if (workdir / "runs").exists() else True
    code, out, err = run(capsys, *argv, "--json")
    assert code == 2 and json.loads(out)["error"] == lines[0].removeprefix("ofahw: error: ")  # one object on stdout too


def _crontab_now() -> str | None:
    if shutil.which("crontab") is None:
        return None
    return subprocess.run(["crontab", "-l"], capture_output=True, text=True).stdout


def test_a_reference_point_may_start_with_a_minus(workdir, capsys):
    ofa_checkpoint_124(workdir / "acc.pth.tar")
    code, out, err = run(capsys, "search", "--lut", "lut/cpu.csv", "--accuracy", "acc.pth.tar", "--reference-point", "-0.6,20",
                         "--pop-size", "8", "--generations", "2", "--out", "runs/ref", "--no-progress", "--json")
    assert code == 0, err
    assert json.loads(out)["reference_point"] == [-0.6, 20.0]
    json.loads((workdir / "runs" / "ref" / "summary.json").read_text(), parse_constant=_no_constants)


def _no_constants(name):
    raise AssertionError(f"{name} is not JSON")


def test_rerun_with_nothing_to_measure_says_so(workdir, capsys):
    code, out, err = run(capsys, "profile", "--target", "cpu", "--space", SPACE, "--resolutions", "128", "--samples", "8",
                         "--out", "lut/cpu.csv")
    assert code == 0, err
    assert "nothing measured this run" in out and "nan" not in out.lower()


def test_an_interrupted_search_says_what_it_kept(tmp_path):
    import argparse

    from ofahw.cli.search_cmd import interrupted

    args = argparse.Namespace(out=str(tmp_path))
    assert interrupted(args) == "stopped before the first checkpoint: nothing was saved"
    (tmp_path / "checkpoint.pkl").write_bytes(b"{}")
    assert "is kept; rerun the same command to resume" in interrupted(args)


def test_console_script_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ofahw.cli.main", "predict", "--lut", "nope.csv", "--config", "{}"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "ofahw: error: LUT nope.csv does not exist"
    for argv in (["--help"], ["profile", "--help"], ["predict", "--help"], ["targets", "check", "--help"], ["lut", "import", "--help"]):
        assert subprocess.run([sys.executable, "-m", "ofahw.cli.main", *argv], capture_output=True).returncode == 0


@pytest.mark.parametrize("spread, tail, warned", [(0.02, 0.06, []), (0.30, 0.06, ["unsteady"]), (0.02, 0.9, ["shared"]),
                                                  (0.30, 0.9, ["unsteady", "shared"])])
def test_steadiness_warnings(profiled_lut, spread, tail, warned):
    from ofahw.lut import LatencyTable
    from ofahw.lut.steadiness import Steadiness

    table = LatencyTable.read(profiled_lut)
    for row in table.rows:
        row["round_spread"] = spread
        row["p90_ms"] = row["p10_ms"] * (1 + tail)
    steadiness = Steadiness.of(table)
    assert steadiness.block_round_spread == pytest.approx(spread) and steadiness.network_tail == pytest.approx(tail)
    found = [w for w in ("unsteady", "shared") if any(w in text for text in steadiness.warnings())]
    assert found == warned


def test_profile_under_contention_warns(workdir, busy_core, capsys):
    code, out, err = run(capsys, "profile", "--target", "cpu", "--space", SPACE, "--resolutions", "128", "--samples", "6",
                         "--out", "lut/busy.csv", "--no-progress", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["steadiness"]["contended"] and any("shared while it was profiled" in w for w in payload["warnings"])


def test_argument_errors_are_one_line_and_a_json_object(capsys):
    for argv in (["search", "--lut", "x.csv", "--out", "r", "--reference-point=nan,inf", "--json"],
                 ["reprofile", "--lut", "x.csv", "--confirm-after", "-5", "--json"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        out, err = capsys.readouterr()
        assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and "error:" in err
        assert json.loads(out)["exit_status"] == 2
