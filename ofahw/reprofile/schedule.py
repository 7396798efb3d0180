"""``ofahw schedule``: run ``ofahw reprofile`` periodically from the user's crontab. Each entry is
one line marked with the LUT it checks; its output goes to a log beside the LUT."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ofahw.errors import ConfigError, UserError

EVERY = {"hourly": "17 * * * *", "daily": "17 3 * * *", "weekly": "17 3 * * 1"}
MARK = "# ofahw-reprofile "
_CRON_FIELD = re.compile(r"^[\d*/,\-]+$")


def _crontab() -> str:
    path = shutil.which("crontab")
    if path is None:
        raise UserError("`crontab` is not installed; install cron (e.g. apt-get install cron) to schedule re-profiling")
    return path


def _read() -> list[str]:
    result = subprocess.run([_crontab(), "-l"], capture_output=True, text=True)
    if result.returncode != 0:
        if "no crontab" in result.stderr.lower():
            return []
        raise UserError(f"cannot read the crontab: {result.stderr.strip()}")
    return result.stdout.splitlines()


def _write(lines: list[str]) -> None:
    text = "\n".join(lines) + ("\n" if lines else "")
    result = subprocess.run([_crontab(), "-"], input=text, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"cannot write the crontab: {result.stderr.strip()}")


def schedule_expression(every: str) -> str:
    expression = EVERY.get(every, every)
    fields = expression.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ConfigError(f"--every must be hourly, daily, weekly or a 5-field cron expression, not {every!r}")
    return expression


def install(target: str, lut: str | Path, every: str) -> dict:
    lut = Path(lut).resolve()
    if not lut.is_file():
        raise UserError(f"LUT {lut} does not exist")
    expression = schedule_expression(every)
    log = lut.with_name(lut.stem + ".reprofile.log")
    command = (f"cd {shlex.quote(str(Path.cwd()))} && {shlex.quote(sys.executable)} -m ofahw reprofile "
               f"--target {shlex.quote(target)} --lut {shlex.quote(str(lut))} >> {shlex.quote(str(log))} 2>&1")
    lines = [line for line in _read() if not line.endswith(MARK + str(lut))]
    lines.append(f"{expression} {command} {MARK}{lut}")
    _write(lines)
    return {"lut": str(lut), "target": target, "schedule": expression, "log": str(log)}


def entries() -> list[dict]:
    out = []
    for line in _read():
        if MARK in line:
            head, lut = line.split(MARK, 1)
            fields = head.split()
            out.append({"lut": lut, "schedule": " ".join(fields[:5]), "command": " ".join(fields[5:])})
    return out


def remove(lut: str | Path) -> bool:
    lut = Path(lut).resolve()
    lines = _read()
    kept = [line for line in lines if not line.endswith(MARK + str(lut))]
    if len(kept) == len(lines):
        return False
    _write(kept)
    return True
