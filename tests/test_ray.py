"""Ray, with a real two-node cluster on this machine (``ray.cluster_utils.Cluster``): evaluation
workers (same outputs as a local run; a worker's node lost mid-run), targets pinned by resource to
the second node (their LUT records it; its loss stops the run with progress saved, or is waited
for), what the cluster can place, and one line for a resource no node offers."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from conftest import FAST, RESOLUTION, SPACE, make_images, write_yaml
from ray.cluster_utils import Cluster

from ofahw.cli.main import main
from ofahw.cluster import evaluate_on_ray
from ofahw.cluster.placement import TargetHost
from ofahw.evaluate import ImageFolder
from ofahw.lut.table import LatencyTable
from ofahw.measure import load_target
from ofahw.reprofile import EXIT_STATUS
from ofahw.space import get_space

LAB = "lab-b/cpu"  # the custom resource only the second node offers


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    ray.init(address=cluster.address, logging_level="warning", log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def second_node(cluster):
    """The node offering LAB (added again where a test removed it)."""
    for node in cluster.worker_nodes:
        if any(n["NodeID"] == node.node_id and n["Alive"] for n in ray.nodes()):
            return node
    node = cluster.add_node(num_cpus=1, resources={LAB: 1})
    cluster.wait_for_nodes()
    return node


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("images"), classes=3, per_class=4)


def configs_file(folder: Path, n: int, seed: int) -> Path:
    path = folder / "configs.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in get_space(SPACE).sample(n, np.random.default_rng(seed), [RESOLUTION])))
    return path


def evaluate_argv(configs, images, weights, out):
    return ["evaluate", "--space", SPACE, "--configs", str(configs), "--data", str(images), "--weights", str(weights),
            "--batch-size", "4", "--out", str(out)]


def evaluate_here(argv):
    """A local run with the workers' one torch thread: the probabilities of a run with more threads differ in the
    last float16 bit here and there (oneDNN's blocking depends on the thread count), as they would between two
    local runs with different thread counts."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)


def assert_same_outputs(a: Path, b: Path):
    assert (a / "accuracy.jsonl").read_text() == (b / "accuracy.jsonl").read_text()
    assert json.loads((a / "probs" / "index.json").read_text()) == json.loads((b / "probs" / "index.json").read_text())
    assert np.array_equal(np.load(a / "labels.npy"), np.load(b / "labels.npy"))
    for table in (a / "probs").glob("*.npy"):
        assert np.array_equal(np.load(table), np.load(b / "probs" / table.name)), table.name


def test_evaluate_on_two_workers_equals_local_run(cluster, tmp_path, images, weights, capsys):
    second_node(cluster)
    configs = configs_file(tmp_path, 3, seed=1)
    evaluate_here(evaluate_argv(configs, images, weights, tmp_path / "local"))
    assert main([*evaluate_argv(configs, images, weights, tmp_path / "ray"), "--ray", "--workers", "2"]) == 0
    out, err = capsys.readouterr()
    assert "on the Ray cluster auto" in out and err.count("(worker on") == 3
    assert_same_outputs(tmp_path / "local", tmp_path / "ray")
    assert main([*evaluate_argv(configs, images, weights, tmp_path / "ray"), "--ray"]) == 0  # a rerun: nothing left to do
    assert "evaluating" not in capsys.readouterr().err
    assert len((tmp_path / "ray" / "accuracy.jsonl").read_text().splitlines()) == 3


def test_evaluate_survives_a_lost_worker_node(cluster, tmp_path, images, weights):
    node = second_node(cluster)
    configs = configs_file(tmp_path, 4, seed=2)
    lines = []

    def log(line):
        lines.append(line)
        if line.startswith("[1/"):  # the first subnet is done: the second node goes, with its worker
            cluster.remove_node(node)

    space = get_space(SPACE)
    data = ImageFolder(images)
    records = evaluate_on_ray(space, [json.loads(c) for c in configs.read_text().splitlines()], weights, data, data,
                              tmp_path / "ray", workers=2, batch_size=4, log=log)
    # its worker was lost running or between subnets (its subnet went to the other worker), or while it started
    assert any("lost" in line or "died while starting" in line for line in lines), lines
    written = [json.loads(line) for line in (tmp_path / "ray" / "accuracy.jsonl").read_text().splitlines()]
    assert len(records) == 4 and len({r["config_hash"] for r in written}) == len(written) == 4  # nothing lost, nothing twice
    evaluate_here(evaluate_argv(configs, images, weights, tmp_path / "local"))
    assert_same_outputs(tmp_path / "local", tmp_path / "ray")


def pinned_target(folder: Path, name: str, resources: str) -> Path:
    protocol = "\n".join(f"  {k}: {v}" for k, v in FAST.to_dict().items())
    return write_yaml(folder / "targets" / f"{name}.yaml",
                      f"kind: cpu\nruntime: {{threads: 1}}\nprotocol:\n{protocol}\nray: {{resources: {{{resources}}}}}\n")


def profile_argv(target: Path, out: Path, *extra):
    return ["profile", "--target", str(target), "--space", SPACE, "--resolutions", str(RESOLUTION), "--samples", "5",
            "--no-progress", "--out", str(out), "--ray", *extra]


def test_profile_on_the_node_offering_the_resource(cluster, tmp_path, capsys):
    node = second_node(cluster)
    target = pinned_target(tmp_path, "lab", f'"{LAB}": 1')
    assert main([*profile_argv(target, tmp_path / "lab.csv"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    table = LatencyTable.read(tmp_path / "lab.csv")
    assert table.device["ray_node"]["node_id"] == node.node_id == payload["device"]["ray_node"]["node_id"]
    assert table.device["runtime"] == "onnxruntime" and payload["measured"] == len(table.rows)
    # without --ray, a target placed on a node is refused rather than measured here
    assert main([a for a in profile_argv(target, tmp_path / "here.csv") if a != "--ray"]) == 2
    assert "pass --ray" in capsys.readouterr().err and not (tmp_path / "here.csv").exists()
    assert main(["targets", "check", "--target", str(target)]) == 2  # nor does any other command measure it here
    assert "ofahw profile --ray" in capsys.readouterr().err


@pytest.fixture(scope="module")
def placed_lut(cluster, tmp_path_factory) -> tuple[Path, Path]:
    """A target pinned to the second node and its LUT, profiled there."""
    second_node(cluster)
    folder = tmp_path_factory.mktemp("placed")
    target = pinned_target(folder, "lab", f'"{LAB}": 1')
    assert main(profile_argv(target, folder / "lab.csv")) == 0
    return target, folder / "lab.csv"


def test_measuring_commands_place_their_target(cluster, placed_lut, tmp_path, weights, capsys):
    """check, predict --measure, export --measure and reprofile measure a pinned target on its node with
    --ray, as profile does."""
    node = second_node(cluster)
    target, lut = placed_lut
    capsys.readouterr()
    assert main(["targets", "check", "--target", str(target), "--ray", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ray_node"]["node_id"] == node.node_id
    config = LatencyTable.read(lut).networks[0]["config"]
    assert main(["predict", "--lut", str(lut), "--config", json.dumps(config), "--measure", "--target", str(target),
                 "--ray", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)["measured"]
    assert measured["ray_node"]["node_id"] == node.node_id and measured["p10"] > 0
    assert main(["export", "--space", SPACE, "--config", json.dumps(config), "--weights", str(weights), "--target",
                 str(target), "--measure", "--ray", "--out", str(tmp_path / "model"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["measured"]["ray_node"]["node_id"] == node.node_id
    code = main(["reprofile", "--lut", str(lut), "--target", str(target), "--ray", "--check-only", "--confirm-after", "0",
                 "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == EXIT_STATUS[record["verdict"]] and record["ray_node"]["node_id"] == node.node_id
    checks = lut.with_name("lab.history").joinpath("checks.jsonl").read_text().splitlines()
    assert json.loads(checks[-1])["ray_node"]["node_id"] == node.node_id


@pytest.mark.skipif(shutil.which("crontab") is None, reason="cron is not installed")
def test_a_schedule_of_a_placed_target_measures_on_ray(cluster, placed_lut, capsys):
    from ofahw.reprofile import schedule

    second_node(cluster)
    target, lut = placed_lut
    install = ["schedule", "install", "--target", str(target), "--lut", str(lut), "--via", "cron"]
    before = schedule._read()
    try:
        assert main(install) == 2
        assert "with --ray ADDRESS" in capsys.readouterr().err
        assert main([*install, "--ray", "--ray-wait", "60"]) == 0
        [entry] = [e for e in schedule.entries() if e["lut"] == str(lut.resolve())]
        assert entry["command"].split(">>")[0].rstrip().endswith(f"--lut {lut.resolve()} --ray auto --ray-wait 60")
    finally:
        schedule._write(before)


def test_two_targets_one_pinned_one_here(cluster, tmp_path, capsys):
    """With --ray, a target without a ray section measures on this process's node, in an actor too."""
    node = second_node(cluster)
    pinned = pinned_target(tmp_path, "lab", f'"{LAB}": 1')
    here = write_yaml(tmp_path / "targets" / "here.yaml", pinned.read_text().split("ray:")[0])
    argv = ["profile", "--target", str(pinned), "--target", str(here), "--space", SPACE, "--resolutions", str(RESOLUTION),
            "--samples", "5", "--no-progress", "--ray", "--json"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert main(argv) == 0
    results = {r["target"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert results["lab"]["device"]["ray_node"]["node_id"] == node.node_id
    assert results["here"]["device"]["ray_node"]["node_id"] == ray.get_runtime_context().get_node_id() != node.node_id
    assert (tmp_path / "lut" / "lab.csv").exists() and (tmp_path / "lut" / "here.csv").exists()


def journal_lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def when_journal_has(journal: Path, lines: int, action):
    def watch():
        deadline = time.monotonic() + 120
        while journal_lines(journal) < lines and time.monotonic() < deadline:
            time.sleep(0.05)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_lost_node_stops_the_profile_and_a_rerun_resumes(cluster, tmp_path, capsys):
    node = second_node(cluster)
    target = pinned_target(tmp_path, "lab", f'"{LAB}": 1')
    out = tmp_path / "lab.csv"
    journal = out.with_name(out.name + ".journal")
    watcher = when_journal_has(journal, 12, lambda: cluster.remove_node(node))
    code = main(profile_argv(target, out))
    watcher.join()
    err = capsys.readouterr().err
    assert code == 1 and "was lost mid-profile" in err and "Traceback" not in err, err
    saved = journal_lines(journal) - 1
    assert saved >= 11 and not out.exists()
    second_node(cluster)
    assert main([*profile_argv(target, out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    table = LatencyTable.read(out)
    keys = [(r["kind"], r["key"]) for r in table.rows]
    assert payload["reused_rounds"] == saved and len(keys) == len(set(keys))  # resumed, nothing measured twice
    assert all(r["rounds"] == (FAST.network_rounds if r["kind"] == "network" else FAST.rounds) for r in table.rows)


def test_lost_node_is_waited_for(cluster, tmp_path, capsys):
    node = second_node(cluster)
    target = pinned_target(tmp_path, "lab", f'"{LAB}": 1')
    out = tmp_path / "lab.csv"
    codes = []
    run = threading.Thread(target=lambda: codes.append(main([*profile_argv(target, out, "--ray-wait", "120"), "--json"])))
    run.start()  # the profile in a thread: Ray adds nodes from the main thread only
    journal = out.with_name(out.name + ".journal")
    deadline = time.monotonic() + 120
    while journal_lines(journal) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    cluster.remove_node(node)
    time.sleep(1.0)
    second_node(cluster)
    run.join(300)
    assert codes == [0]
    table = LatencyTable.read(out)
    assert json.loads(capsys.readouterr().out)["reused_rounds"] == 0
    ray_nodes = [n["node_id"] for n in table.device["ray_nodes"]]  # both, the node that came back last
    assert ray_nodes[0] == node.node_id and table.device["ray_node"]["node_id"] == ray_nodes[-1] != node.node_id


def test_missing_resource_and_targets_list(cluster, tmp_path, monkeypatch, capsys):
    second_node(cluster)
    folder = tmp_path / "t"
    missing = pinned_target(folder, "nowhere", '"lab-z/jetson-9": 1')
    pinned_target(folder, "lab", f'"{LAB}": 1')
    assert main(profile_argv(missing, tmp_path / "x.csv")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'lab-z/jetson-9'" in err and "no node" in err, err
    monkeypatch.setenv("OFAHW_TARGETS", str(folder / "targets"))
    assert main(["targets", "list", "--ray", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["targets"]}
    assert rows["nowhere"]["nodes"] == [] and rows["cpu"]["nodes"] is None
    assert [n["node_id"] for n in rows["lab"]["nodes"]] == [second_node(cluster).node_id]
    assert main(["targets", "list", "--ray"]) == 0
    assert "NO node of the cluster offers" in capsys.readouterr().out


def test_two_targets_of_one_device_take_turns(tmp_path):
    """The node's device lock: a second target of the same device waits while the first measures,
    unless its file says it may measure concurrently."""
    target = load_target(str(pinned_target(tmp_path, "a", f'"{LAB}": 1')))
    first, second, free = TargetHost(target, lock=True), TargetHost(target, lock=True), TargetHost(target, lock=False)
    entered = []

    def measure_second():
        with second._device():
            entered.append("second")

    with first._device():
        thread = threading.Thread(target=measure_second)
        thread.start()
        with free._device():
            entered.append("free")
        time.sleep(0.3)
        assert entered == ["free"]  # the locked one still waits
    thread.join(5)
    assert entered == ["free", "second"]
    for host in (first, second, free):
        host.close()


def test_the_models_of_killed_actors_are_removed(tmp_path, monkeypatch):
    """A killed actor never closes: the next actor on its node removes the model folders of actors
    whose process is gone, and keeps those of live ones."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    killed = tmp_path / f"ofahw-models-{ended.stdout.strip()}-x1"
    killed.mkdir()
    (killed / "model.onnx").write_bytes(b"onnx")
    live, unrelated = tmp_path / f"ofahw-models-{os.getpid()}-x2", tmp_path / "ofahw-models-x3"
    live.mkdir()
    unrelated.mkdir()
    host = TargetHost(load_target("cpu"), lock=False)
    assert not killed.exists() and live.exists() and unrelated.exists()
    assert host.files.parent == tmp_path and host.files.name.startswith(f"ofahw-models-{os.getpid()}-")
    host.close()
    assert not host.files.exists()


def test_without_ray_nothing_imports_it(tmp_path, images, weights):
    configs = configs_file(tmp_path, 1, seed=3)
    code = ("import sys; from ofahw.cli.main import main; "
            f"rc = main({evaluate_argv(configs, images, weights, tmp_path / 'o')!r}); "
            "assert rc == 0 and 'ray' not in sys.modules, rc")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_ray_missing_is_one_line(tmp_path, monkeypatch, capsys, images, weights):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main([*evaluate_argv(configs_file(tmp_path, 1, seed=4), images, weights, tmp_path / "o"), "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs the Python package ray" in err and "pip install" in err


def test_bad_ray_arguments(tmp_path, images, weights, capsys):
    configs = configs_file(tmp_path, 1, seed=5)
    for extra, message in ((["--ray", "nowhere"], "--ray takes auto, local or HOST:PORT"),
                           (["--workers", "2"], "--workers sets the Ray workers of --ray")):
        assert main([*evaluate_argv(configs, images, weights, tmp_path / "o"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "o" / "accuracy.jsonl").exists()
    for argv, flag in ((["predict", "--config", "{}", "--ray"], "--measure"),
                       (["search", "--out", str(tmp_path / "s"), "--ray", "local"], "--verify")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"without {flag} nothing is measured" in err, err
    assert not (tmp_path / "s").exists()
