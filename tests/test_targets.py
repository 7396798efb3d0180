import os

import pytest
from conftest import write_yaml

from ofahw.errors import TargetError
from ofahw.measure import list_targets, load_target
from ofahw.measure.check import check_target


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_builtin_cpu_target_without_any_file(in_tmp):
    target = load_target("cpu")
    assert target.kind == "cpu" and target.source == "built in"
    assert target.options == {"threads": 1, "graph_optimization": "all", "precision": "fp32", "per_channel": False}


def test_target_from_targets_folder_and_from_path(in_tmp):
    write_yaml(in_tmp / "targets" / "cpu2.yaml", "kind: cpu\nruntime: {threads: 2}\nprotocol: {statistic: median}\n")
    target = load_target("cpu2")
    assert target.options["threads"] == 2 and target.protocol.statistic == "median"
    other = write_yaml(in_tmp / "elsewhere" / "mine.yaml", "name: laptop\nkind: cpu\n")
    assert load_target(str(other)).name == "laptop"
    names = {t.name for t in list_targets()}
    assert {"cpu", "cpu2"} <= names


def test_repository_cpu_target_file_is_valid():
    repo_file = os.path.join(os.path.dirname(__file__), "..", "targets", "cpu.yaml")
    target = load_target(repo_file)
    assert target.protocol.statistic == "p10" and target.protocol.rounds >= 1


@pytest.mark.parametrize("text, message", [
    ("kind: [unclosed\n", "not valid YAML"),
    ("- a list\n", "must hold a mapping"),
    ("kind: fpga\n", "kind must be one of"),
    ("kind: cpu\nrunttime: {}\n", "unknown keys"),
    ("kind: cpu\nruntime: {threads: 0}\n", "threads must be a positive integer"),
    ("kind: cpu\nruntime: {cores: 2}\n", "unknown cpu runtime options"),
    ("kind: cpu\nruntime: {graph_optimization: max}\n", "graph_optimization must be one of"),
    ("kind: cpu\nprotocol: {statistic: p50}\n", "bad protocol"),
    ("kind: cpu\nprotocol: {round_rule: slowest}\n", "round_rule must be one of"),
    ("kind: cpu\nprotocol: 3\n", "'protocol' must be a mapping"),
    ("kind: cpu\nray: {node: a}\n", "'ray' must be a mapping with 'resources'"),
    ("kind: cpu\nray: {resources: [a]}\n", "'ray' must be a mapping with 'resources'"),
    ("kind: cpu\nray: {resources: {lab-a/jetson: 0}}\n", "needs a positive amount"),
    ("kind: cpu\nray: {resources: {lab-a/jetson: true}}\n", "needs a positive amount"),
    ("kind: cpu\nray: {resources: {lab: 1}, concurrent: maybe}\n", "'concurrent' must be true or false"),
])
def test_malformed_target_files(in_tmp, text, message):
    path = write_yaml(in_tmp / "targets" / "bad.yaml", text)
    with pytest.raises(TargetError, match=message):
        load_target(str(path))


def test_unknown_target_lists_the_known(in_tmp):
    with pytest.raises(TargetError, match="unknown target 'jetson9'.*cpu"):
        load_target("jetson9")
    with pytest.raises(TargetError, match="does not exist"):
        load_target("missing/file.yaml")


def test_check_times_a_probe_model_for_real(in_tmp):
    result = check_target(load_target("cpu"))
    assert result["probe"]["n"] >= 20 and result["probe"]["p10"] > 0
    meta = result["metadata"]
    assert meta["runtime"] == "onnxruntime" and meta["threads"] == 1 and meta["cpu_count"] >= 1 and meta["onnxruntime"]
