"""The package's structure stays as designed: no import cycle between ofahw's modules, no private
name taken from another of its packages (scripts/check_imports.py, which prints what it finds)."""

import importlib.util
from pathlib import Path


def check_imports():
    path = Path(__file__).resolve().parents[1] / "scripts" / "check_imports.py"
    spec = importlib.util.spec_from_file_location("check_imports", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_and_no_private_name_across_packages(capsys):
    module = check_imports()
    assert module.main() == 0, capsys.readouterr().out
    assert "0 cycles, 0 private names" in capsys.readouterr().out


def test_the_check_sees_a_cycle():
    module = check_imports()
    assert module.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert module.cycles({"a": {"b"}, "b": set()}) == []
