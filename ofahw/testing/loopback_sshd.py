"""A real OpenSSH server on 127.0.0.1 for the SSH target's tests and benchmark: generated host and
user keys, key-only authentication, SFTP; the caller stops it."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def available() -> str | None:
    """None when a test server can run here, else why not."""
    if not os.path.exists(SSHD):
        return "OpenSSH server (sshd) is not installed; .ci/run installs openssh-server"
    if os.geteuid() != 0:
        return "sshd for tests needs root here (privilege-separation directory)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@dataclass
class Server:
    port: int
    user: str
    user_key: Path
    host_pub: str  # "ssh-ed25519 AAAA..."
    known_hosts: Path
    process: subprocess.Popen

    def target_yaml(self, **ssh) -> str:
        import yaml

        settings = {"host": "127.0.0.1", "port": self.port, "user": self.user, "key": str(self.user_key),
                    "known_hosts": str(self.known_hosts), "connect_timeout": 10, **ssh}
        return yaml.safe_dump({"kind": "ssh", "ssh": settings, "runtime": {"runtime": "onnxruntime", "threads": 1}})


def start(root: Path) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", exist_ok=True)
    host_key, user_key = keygen(root / "host_key"), keygen(root / "user_key")
    authorized = root / "authorized_keys"
    authorized.write_text(Path(f"{user_key}.pub").read_text())
    port = _free_port()
    config = root / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"AuthorizedKeysFile {authorized}",
        f"PidFile {root / 'sshd.pid'}", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
        "Subsystem sftp internal-sftp", "MaxStartups 50", "LogLevel ERROR", "",
    ]))
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=open(root / "sshd.log", "w"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()}")
    host_pub = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    return Server(port, getpass.getuser(), user_key, host_pub, known_hosts, process)
