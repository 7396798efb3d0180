"""Parsing of option values shared by several commands (durations, resolution lists, configs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ofahw.errors import UserError
from ofahw.space import Space

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '1.5h' → seconds."""
    match = _DURATION.match(text or "")
    if not match:
        raise UserError(f"--budget must look like 900, 90s, 15m or 1.5h, got {text!r}")
    seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if seconds <= 0:
        raise UserError(f"--budget must be more than zero, got {text!r}")
    return seconds


def parse_resolutions(text: str | None, space: Space) -> list[int] | None:
    """'160,176,192' or '160-224' (every resolution of the space in that range) → list; None (not
    given) → None, the space's own list. An empty value is an error, not "not given"."""
    if text is None:
        return None
    if not text.strip():
        raise UserError(f"--resolutions is empty; give a list like 160,176,192, a range like 160-224, or leave it out "
                        f"for all of {space.name}'s")
    out: list[int] = []
    try:
        for piece in text.split(","):
            if "-" in piece:
                lo, hi = (int(v) for v in piece.split("-", 1))
                out += [r for r in space.resolutions if lo <= r <= hi]
            else:
                out.append(int(piece))
    except ValueError:
        raise UserError(f"--resolutions must be integers like 160,176,192 or a range like 160-224, got {text!r}") from None
    if not out:
        raise UserError(f"--resolutions {text!r} selects none of space {space.name}'s resolutions {list(space.resolutions)}")
    return list(space.validate_resolutions(sorted(set(out))))


def read_config(text: str) -> dict:
    """A JSON object given inline, or the path of a file holding one."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise UserError(f"--config must be a JSON object or a file holding one; {text!r} is neither")
        stripped = path.read_text(encoding="utf-8")
    try:
        config = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise UserError(f"--config is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(config, dict):
        raise UserError("--config must be a JSON object")
    return config
