"""The subnets ``ofahw evaluate`` is asked about: a config, a file of them, or a search's front."""

from __future__ import annotations

import json
from pathlib import Path

from ofahw.errors import UserError
from ofahw.search.outputs import read_front


def read_configs(spec: str) -> list[dict]:
    """Configs from a JSON object, a file of one, JSON lines, or a search's pareto.csv."""
    path = Path(spec)
    if path.suffix == ".csv":
        return [m.config for m in read_front(path).members]
    text = path.read_text(encoding="utf-8") if path.is_file() else spec
    try:
        stripped = text.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [json.loads(line) for line in stripped.splitlines() if line.strip()]
    except (json.JSONDecodeError, KeyError) as exc:
        raise UserError(f"cannot read configs from {spec[:80]}: {exc}") from None
