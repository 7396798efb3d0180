"""Pretrained supernet weights: the ``ofa`` model zoo downloaded on request into a checksummed
cache, or a local file. Nothing is fetched unless a download is asked for."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from ofahw._io import atomic_write_bytes, cache_dir, sha256_file
from ofahw.errors import UserError

_BASE = "https://raw.githubusercontent.com/han-cai/files/master/ofa/ofa_nets/"
# space -> (file name, URL). OFA publishes no checksums: a download's SHA-256 is recorded beside
# it on first fetch and checked on every later use, so a damaged or swapped file is noticed.
ZOO = {
    "ofa-mbv3-w1.0": ("ofa_mbv3_d234_e346_k357_w1.0", _BASE + "ofa_mbv3_d234_e346_k357_w1.0"),
    "ofa-mbv3-w1.2": ("ofa_mbv3_d234_e346_k357_w1.2", _BASE + "ofa_mbv3_d234_e346_k357_w1.2"),
    "ofa-proxyless": ("ofa_proxyless_d234_e346_k357_w1.3", _BASE + "ofa_proxyless_d234_e346_k357_w1.3"),
    "ofa-resnet50": ("ofa_resnet50_d0-1-2_e0.2-0.25-0.35_w0.65-0.8-1.0",
                     "https://drive.google.com/uc?id=1xy6VIPEHXqbbqNu3xEZUxhp5FbTVs5cQ"),
}


def cached_weights_path(space_name: str) -> Path:
    if space_name not in ZOO:
        raise UserError(f"no pretrained weights are known for space '{space_name}'")
    return cache_dir("weights") / ZOO[space_name][0]


def fetch_weights(space_name: str, download: bool = False, timeout: float = 60.0) -> Path:
    """The cached weights of ``space_name``'s supernet, downloading them only if ``download``."""
    path = cached_weights_path(space_name)
    name, url = ZOO[space_name]
    return fetch_cached(path, url, download, f"pretrained weights for {space_name}", "--weights PATH", timeout)


def fetch_cached(path: Path, url: str, download: bool, what: str, flag: str, timeout: float = 60.0) -> Path:
    """``path`` if cached (checked against the SHA-256 recorded when it was fetched), else ``url``
    downloaded there when ``download``; otherwise, or offline, a UserError naming the file to
    supply and the flag that passes it."""
    sidecar = path.with_name(path.name + ".sha256")
    if path.exists():
        if sidecar.exists() and sidecar.read_text().split()[0] != sha256_file(path):
            raise UserError(f"cached {path} does not match its recorded SHA-256; delete the file and fetch it again")
        return path
    if not download:
        raise UserError(f"{what} are not cached; allow the download, or fetch {url} elsewhere and pass the file with "
                        f"{flag} (or place it at {path})")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"cannot download {what} from {url} ({getattr(exc, 'reason', exc)}); offline? fetch it "
                        f"elsewhere and pass it with {flag} (or place it at {path})") from None
    atomic_write_bytes(path, data)
    sidecar.write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
    return path


def load_state_dict(path: str | Path) -> dict:
    """A checkpoint's state dict, loaded with ``weights_only=True`` (no code runs from the file)."""
    import pickle

    import torch

    try:
        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"weights file {path} does not exist") from None
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError) as exc:
        raise UserError(f"weights file {path} is not a loadable torch checkpoint: {str(exc).splitlines()[0]}") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"weights file {path} holds no state dict")
    return state
