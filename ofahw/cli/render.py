"""How every command shows its result and its progress: one renderer for the result record (text
or ``--json``) and one line printer for progress on stderr."""

from __future__ import annotations

import sys

from ofahw._io import strict_json


def emit(args, payload: dict, lines: list[str]) -> None:
    """Print ``payload`` as strict JSON with --json, else the human-readable ``lines``."""
    print(strict_json(payload, indent=2, sort_keys=True, default=str) if args.json else "\n".join(lines))


def progress_line(message: str) -> None:
    """A progress or note line on stderr (stdout holds the result)."""
    print(message, file=sys.stderr, flush=True)
