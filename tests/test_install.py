"""A fresh virtual environment with a plain `pip install .` (no extras) runs every command's --help
and a tiny search: the main jobs need nothing beyond the package's own dependencies."""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ofahw.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]


def command_paths(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, ...]]:
    """Every command and subcommand of the CLI, e.g. ('targets', 'list')."""
    found = [prefix]
    for action in parser._actions:  # argparse offers no public walk over its subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += command_paths(sub, (*prefix, name))
    return found


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # torch first, pinned as the set-up script does: a plain torch requirement would pull CUDA builds
    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True, timeout=900)
    source = tmp_path_factory.mktemp("src") / "ofahw"
    shutil.copytree(REPO, source, ignore=_not_the_package)
    subprocess.run([*pip, str(source)], check=True, timeout=900)
    return python


def _not_the_package(folder: str, names: list[str]) -> list[str]:
    """What a clean clone does not hold: git's folder, caches, and this checkout's own LUTs and runs."""
    top = Path(folder) == REPO
    return [n for n in names if n in (".git", "__pycache__") or n.endswith(".egg-info") or (top and n in ("lut", "runs", "build"))]


def test_every_command_has_help_in_a_fresh_install(fresh_venv):
    """Every command's --help, in one process of the fresh install (a process each took half a minute)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import contextlib, io, sys\n"
            "from ofahw.cli.main import main\n"
            "for path in sys.argv[1:]:\n"
            "    out = io.StringIO()\n"
            "    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
            "        main([*path.split(), '--help'])\n"
            "    print(path, 'usage:' in out.getvalue())\n")
    paths = [" ".join(path) for path in command_paths(build_parser())]
    result = subprocess.run([str(fresh_venv), "-c", code, *paths], capture_output=True, text=True, env=env,
                            cwd=fresh_venv.parent, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [f"{path} True" for path in paths], result.stdout


def test_a_tiny_search_runs_in_a_fresh_install(fresh_venv, profiled_lut, tmp_path):
    from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder

    from ofahw.space._ofa import ofa_modules

    ofa_modules()
    shutil.copy(profiled_lut, tmp_path / "cpu.csv")
    shutil.copy(profiled_lut.with_suffix(".json"), tmp_path / "cpu.json")
    torch.save(AccuracyPredictor(MobileNetArchEncoder(image_size_list=[128, 160, 192, 224]), device="cpu").state_dict(),
               tmp_path / "acc.pth.tar")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(fresh_venv), "-m", "ofahw", "search", "--lut", "cpu.csv", "--accuracy", "acc.pth.tar",
                             "--pop-size", "8", "--generations", "2", "--out", "runs/tiny", "--no-progress"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "runs" / "tiny" / "pareto.csv").is_file() and (tmp_path / "runs" / "tiny" / "pareto.png").is_file()
