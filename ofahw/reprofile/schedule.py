"""``ofahw schedule``: run ``ofahw reprofile`` periodically — from a systemd user timer where systemd
runs, else from the user's crontab. Each entry is marked with the LUT it checks (a crontab line, or
a timer + service pair named after the LUT); its output goes to a log beside the LUT."""

from __future__ import annotations

import hashlib
import os
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


def one_line(text: str) -> str:
    """A tool's several lines of error as one."""
    return "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())


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
        raise UserError(f"cannot read the crontab: {one_line(result.stderr)}")
    return result.stdout.splitlines()


def _write(lines: list[str]) -> None:
    text = "\n".join(lines) + ("\n" if lines else "")
    result = subprocess.run([_crontab(), "-"], input=text, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"cannot write the crontab: {one_line(result.stderr)}")


# minute, hour, day of month, month, day of week (0 and 7 are Sunday)
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")


def schedule_expression(every: str) -> str:
    """hourly / daily / weekly, or a 5-field cron expression whose values are in range."""
    expression = EVERY.get(every, every)
    fields = expression.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ConfigError(f"--every must be hourly, daily, weekly or a 5-field cron expression, not {every!r}")
    for field, (lo, hi), name in zip(fields, _CRON_RANGES, _CRON_NAMES, strict=True):
        if not _cron_field_ok(field, lo, hi):
            raise ConfigError(f"--every {every!r}: the {name} field {field!r} is not a cron value within {lo}-{hi}")
    return expression


def _cron_field_ok(field: str, lo: int, hi: int) -> bool:
    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) < 1):
            return False
        if base == "*":
            continue
        start, _, end = base.partition("-")
        if not start.isdigit() or (end and not end.isdigit()):
            return False
        if not lo <= int(start) <= (int(end) if end else int(start)) <= hi:
            return False
    return True


def _command(target: str, lut: Path, ray: str | None = None, ray_wait: float = 0.0) -> list[str]:
    placed = ([] if ray is None else ["--ray", ray]) + (["--ray-wait", f"{ray_wait:g}"] if ray is not None and ray_wait else [])
    return [sys.executable, "-m", "ofahw", "reprofile", "--target", target, "--lut", str(lut), *placed]


def _log_path(lut: Path) -> Path:
    return lut.with_name(lut.stem + ".reprofile.log")


def systemd_runs() -> bool:
    """Whether the machine was booted with systemd (its runtime folder exists) and this user's
    service manager answers (it does not in many containers and bare SSH sessions)."""
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
        return False
    try:
        return subprocess.run(["systemctl", "--user", "show-environment"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def install(target: str, lut: str | Path, every: str, via: str = "auto", ray: str | None = None, ray_wait: float = 0.0) -> dict:
    """Schedule ``ofahw reprofile`` of ``lut`` ``via`` cron or a systemd user timer (``auto``: systemd where it runs);
    with ``ray`` (a cluster address) each check measures on the cluster, as ``reprofile --ray``."""
    from ofahw.lut import LatencyTable, check_target
    from ofahw.measure import load_target

    lut = Path(lut).resolve()
    if not lut.is_file():
        raise UserError(f"LUT {lut} does not exist")
    expression = schedule_expression(every)
    # what the scheduled run will open, opened now: a schedule that fails every time is refused here
    table = LatencyTable.read(lut)
    device = load_target(target)
    check_target(table, device, lut)
    if device.placement and ray is None:
        raise UserError(f"target '{device.name}' is measured on the Ray node its file's ray section names: schedule it "
                        "with --ray ADDRESS (the cluster's head node, as the checks will run unattended)")
    via = ("systemd" if systemd_runs() else "cron") if via == "auto" else via
    command = _command(target, lut, ray, ray_wait)
    remove(lut)  # one schedule per LUT: a new one replaces the old, whichever way it was installed
    if via == "systemd":
        return _install_timer(target, lut, expression, command)
    command = f"cd {shlex.quote(str(Path.cwd()))} && {shlex.join(command)} >> {shlex.quote(str(_log_path(lut)))} 2>&1"
    _write([*_read(), f"{expression} {command} {MARK}{lut}"])
    return {"lut": str(lut), "target": target, "schedule": expression, "via": "cron", "log": str(_log_path(lut))}


def entries() -> list[dict]:
    out = []
    for line in _read() if shutil.which("crontab") else []:
        if MARK in line:
            head, lut = line.split(MARK, 1)
            fields = head.split()
            out.append({"lut": lut, "schedule": " ".join(fields[:5]), "via": "cron", "command": " ".join(fields[5:])})
    return out + _timers()


def remove(lut: str | Path) -> bool:
    lut = Path(lut).resolve()
    removed = _remove_timer(lut)
    if shutil.which("crontab") is None:
        return removed
    lines = _read()
    kept = [line for line in lines if not line.endswith(MARK + str(lut))]
    if len(kept) < len(lines):
        _write(kept)
    return removed or len(kept) < len(lines)


# -- systemd user timers -------------------------------------------------------------------------
_DOW = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def unit_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"


def _unit_name(lut: Path) -> str:
    return f"ofahw-reprofile-{re.sub(r'[^A-Za-z0-9]+', '-', lut.stem)[:40]}-{hashlib.sha256(str(lut).encode()).hexdigest()[:8]}"


def on_calendar(expression: str) -> str:
    """A 5-field cron expression as a systemd ``OnCalendar=`` value."""
    minute, hour, dom, month, dow = expression.split()
    if dom != "*" and dow != "*":
        raise ConfigError("a systemd timer cannot say 'day of month OR day of week' as cron does; restrict only one")

    def field(value: str, start: int, names: list[str] | None = None) -> str:
        parts = []
        for part in value.split(","):
            base, _, step = part.partition("/")
            if names and (step or base == "*"):
                raise ConfigError(f"day-of-week field {value!r} cannot be a timer; list the days instead")
            if names:
                base = "..".join(names[int(d)] for d in base.split("-"))
            else:
                base = {"*": str(start) if step else "*"}.get(base, base.replace("-", ".."))
            parts.append(f"{base}/{step}" if step else base)
        return ",".join(parts)

    days = "" if dow == "*" else field(dow, 0, _DOW) + " "
    return f"{days}*-{field(month, 1)}-{field(dom, 1)} {field(hour, 0)}:{field(minute, 0)}:00"


def _systemd_quote(word: str) -> str:
    """One ``ExecStart=`` word: systemd expands % specifiers and $ variables even inside quotes."""
    if "\n" in word:
        raise UserError("a path or name with a newline cannot go into a systemd unit")
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$") + '"'


def _systemctl(*args: str) -> None:
    result = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"systemctl --user {' '.join(args)} failed: {one_line(result.stderr or result.stdout)}")


def _install_timer(target: str, lut: Path, expression: str, command: list[str]) -> dict:
    from ofahw._io import atomic_write_text

    name, folder, calendar = _unit_name(lut), unit_dir(), on_calendar(expression)
    if shutil.which("systemd-analyze"):
        check = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, text=True)
        if check.returncode != 0:
            raise ConfigError(f"cron expression {expression!r} became OnCalendar={calendar!r}, which systemd rejects")
    log = str(_log_path(lut)).replace("%", "%%")
    atomic_write_text(folder / f"{name}.service", (
        f"[Unit]\nDescription=ofahw reprofile of {str(lut).replace('%', '%%')}\n\n[Service]\nType=oneshot\n"
        f"WorkingDirectory={_systemd_quote(str(Path.cwd()))}\n"
        f"ExecStart={' '.join(_systemd_quote(w) for w in command)}\n"
        f"StandardOutput=append:{log}\nStandardError=append:{log}\n"
        # the LUT and the cron schedule it came from, for `schedule list`
        f"{MARK}{lut}\n# schedule {expression}\n"))
    atomic_write_text(folder / f"{name}.timer", (
        f"[Unit]\nDescription=ofahw reprofile of {str(lut).replace('%', '%%')}\n\n[Timer]\nOnCalendar={calendar}\n"
        "Persistent=true\n\n[Install]\nWantedBy=timers.target\n"))
    _systemctl("daemon-reload")
    _systemctl("enable", "--now", f"{name}.timer")
    return {"lut": str(lut), "target": target, "schedule": expression, "via": "systemd", "timer": f"{name}.timer",
            "on_calendar": calendar, "log": str(_log_path(lut))}


def _timers() -> list[dict]:
    out = []
    for service in sorted(unit_dir().glob("ofahw-reprofile-*.service")):
        lines = service.read_text(encoding="utf-8").splitlines()
        lut = next((line[len(MARK):] for line in lines if line.startswith(MARK)), None)
        expression = next((line[len("# schedule "):] for line in lines if line.startswith("# schedule ")), "?")
        command = next((line[len("ExecStart="):] for line in lines if line.startswith("ExecStart=")), "")
        if lut:
            out.append({"lut": lut, "schedule": expression, "via": "systemd", "command": command,
                        "timer": service.with_suffix(".timer").name})
    return out


def _remove_timer(lut: Path) -> bool:
    name = _unit_name(lut)
    service, timer = unit_dir() / f"{name}.service", unit_dir() / f"{name}.timer"
    if not service.exists() and not timer.exists():
        return False
    if shutil.which("systemctl"):
        subprocess.run(["systemctl", "--user", "disable", "--now", timer.name], capture_output=True)
    service.unlink(missing_ok=True)
    timer.unlink(missing_ok=True)
    if shutil.which("systemctl"):
        subprocess.run(["systemctl", "--user", "daemon-reload"], capture_output=True)
    return True
