"""Remote devices over SSH (paramiko): models go up over SFTP into a content-addressed work
folder, and a self-contained runner applies the measurement protocol on the device, streaming
results back as JSON lines — one long-lived remote process per connection, no round trip per model.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import paramiko

from ofahw.errors import TargetError
from ofahw.export import Artifact
from ofahw.measure.power import EnergyMeasurement
from ofahw.measure.protocol import Measurement, Protocol
from ofahw.measure.runner import INSTALL_HINT
from ofahw.measure.target import Target

SSH_KEYS = {"host", "user", "port", "key", "known_hosts", "host_key_fingerprint", "python", "trtexec", "workdir",
            "before", "after", "connect_timeout", "retries"}
# runtime -> the precisions it runs (int8 models are quantized here and shipped quantized)
REMOTE_RUNTIMES = {"onnxruntime": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8"), "trtexec": ("fp32", "fp16")}
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")


@cache
def build_runner_script() -> str:
    """protocol.py, host.py, power.py and runner.py, minus the runner's imports of the others and the
    later modules' ``from __future__`` lines (protocol.py's, first in the file, covers all): one file."""
    here = Path(__file__).parent

    def without(name: str, marker: str) -> str:
        return "".join(line for line in (here / name).read_text().splitlines(keepends=True) if marker not in line)

    return "\n\n".join([(here / "protocol.py").read_text(), (here / "host.py").read_text(),
                        without("power.py", "from __future__ import"), without("runner.py", "# ofahw:local-import")])


def key_fingerprint(key) -> str:
    """OpenSSH's SHA256 fingerprint of a paramiko public key."""
    import base64

    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


class _PinnedOrExplicit:
    """Host-key policy: accept an unknown key only if it matches the target file's pinned
    fingerprint, or if the user explicitly accepted it (then it is saved to known_hosts)."""

    def __init__(self, pinned: str | None, accept: bool, known_hosts: Path, on_accept: Callable[[str], None]):
        self.pinned, self.accept, self.known_hosts, self.on_accept = pinned, accept, known_hosts, on_accept

    def missing_host_key(self, client, hostname, key):
        seen = key_fingerprint(key)
        if self.pinned and seen == self.pinned.rstrip("="):
            self.on_accept(f"matched the pinned fingerprint {seen}")
            return
        if self.accept and not self.pinned:
            client.get_host_keys().add(hostname, key.get_name(), key)
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
            client.save_host_keys(str(self.known_hosts))
            self.on_accept(f"accepted explicitly by the user ({seen}), saved to {self.known_hosts}")
            return
        raise TargetError(f"host key of {hostname} ({key.get_name()} {seen}) is not in {self.known_hosts}"
                          + (f" and does not match the pinned {self.pinned}" if self.pinned else
                             "; pin it with ssh.host_key_fingerprint in the target file, or pass --accept-host-key"))


class SshTarget(Target):
    """A device reached over SSH. ``runtime`` options: ``runtime`` (onnxruntime, openvino or
    trtexec), ``threads`` (onnxruntime, openvino), ``graph_optimization`` and ``providers``
    (onnxruntime), ``precision`` (per runtime: ``REMOTE_RUNTIMES``), ``per_channel`` (int8).

    A job can keep the device busy for minutes without a result (trtexec builds an engine in the
    job's first round: minutes for a whole network on a Jetson), so the runner sends a heartbeat every
    ``heartbeat_s`` while a job runs, and the device counts as lost only after ``silence_s`` without
    any line from it."""

    times_groups = False
    heartbeat_s = 15.0
    silence_s = 120.0

    kind = "ssh"
    option_defaults = {"runtime": "onnxruntime", "threads": 1, "graph_optimization": "all", "providers": None, "precision": "fp32",
                       "per_channel": False}

    def __init__(self, name, options=None, protocol=None, ssh: dict | None = None, accept_host_key: bool = False):
        runtime = {**self.option_defaults, **(options or {})}["runtime"]
        if runtime not in REMOTE_RUNTIMES:
            raise TargetError(f"target '{name}': runtime must be one of {list(REMOTE_RUNTIMES)}, got {runtime!r}")
        self.precisions = REMOTE_RUNTIMES[runtime]
        super().__init__(name, options, protocol)
        self.ssh = _validate_ssh(name, ssh or {})
        self.accept_host_key = accept_host_key
        self.host_key_note: str | None = None
        self._client = self._sftp = self._channel = None
        self._reader = None
        self._remote_meta: dict = {}
        self._uploaded: dict[str, str] = {}  # local path -> remote path

    batch_size = 16
    on_this_machine = False

    @classmethod
    def from_config(cls, name: str, data: dict, protocol: Protocol, accept_host_key: bool = False, **flags) -> SshTarget:
        return cls(name, data.get("runtime"), protocol, ssh=data.get("ssh"), accept_host_key=accept_host_key)

    def describe_runtime(self) -> str:
        return f"remote runtime {self.options['runtime']}"

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "host": self._resolved()["hostname"], "user": self._resolved().get("user")}

    def device_key(self) -> str:
        settings = self._resolved()
        return f"ssh {settings['hostname']}:{settings['port']}"

    # -- connection ---------------------------------------------------------------------------
    def _resolved(self) -> dict:
        """Connection settings: the target file's, over those of an ~/.ssh/config alias."""
        conf = {}
        path = Path("~/.ssh/config").expanduser()
        if path.is_file():
            conf = paramiko.SSHConfig.from_path(str(path)).lookup(self.ssh["host"])
        out = {"hostname": conf.get("hostname", self.ssh["host"]), "port": int(self.ssh.get("port") or conf.get("port", 22)),
               "user": self.ssh.get("user") or conf.get("user"), "key": self.ssh.get("key") or (conf.get("identityfile") or [None])[0]}
        return out

    def _connect(self) -> None:
        settings = self._resolved()
        known_hosts = Path(self.ssh.get("known_hosts") or "~/.ssh/known_hosts").expanduser()
        client = paramiko.SSHClient()
        if known_hosts.is_file():
            client.load_host_keys(str(known_hosts))

        def note(text: str) -> None:
            self.host_key_note = text

        client.set_missing_host_key_policy(_PinnedOrExplicit(self.ssh.get("host_key_fingerprint"), self.accept_host_key, known_hosts, note))
        key = str(Path(settings["key"]).expanduser()) if settings["key"] else None
        where = f"{settings['user'] or ''}{'@' if settings['user'] else ''}{settings['hostname']}:{settings['port']}"
        try:
            client.connect(settings["hostname"], port=settings["port"], username=settings["user"], key_filename=key,
                           allow_agent=key is None, look_for_keys=key is None, password=None,
                           timeout=self.ssh["connect_timeout"], banner_timeout=self.ssh["connect_timeout"],
                           auth_timeout=self.ssh["connect_timeout"])
        except TargetError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            seen, known = key_fingerprint(exc.key), key_fingerprint(exc.expected_key)
            raise TargetError(f"host key of {where} has CHANGED ({seen}, known_hosts has {known}); refusing to connect") from None
        except paramiko.AuthenticationException:
            raise TargetError(f"authentication to {where} failed with {'key ' + key if key else 'the agent / default keys'}"
                              " (ofahw uses keys only, never passwords)") from None
        except FileNotFoundError:
            raise TargetError(f"SSH key {key} does not exist") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if isinstance(exc.__context__, TargetError):
                raise exc.__context__ from None
            raise TargetError(f"cannot connect to {where}: {exc}") from None
        self._client = client
        self._sftp = client.open_sftp()

    def _exec(self, command: str, timeout: float = 120) -> tuple[int, str, str]:
        _, stdout, stderr = self._client.exec_command(command, timeout=timeout)
        code = stdout.channel.recv_exit_status()
        return code, stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")

    def _workdir(self) -> str:
        return self.ssh["workdir"]

    def _mkdirs(self, path: str) -> None:
        current = ""
        for piece in path.split("/"):
            current = f"{current}/{piece}" if current else (piece or "/")
            if not piece:
                continue
            try:
                self._sftp.stat(current)
            except OSError:
                self._sftp.mkdir(current)

    def _put(self, data: bytes | None, local: Path | None, remote: str) -> None:
        """Upload to a temporary name, then rename: a dropped connection leaves no half file."""
        try:
            self._sftp.stat(remote)
            return
        except OSError:
            pass
        tmp = f"{remote}.part-{int(time.time() * 1e6)}"
        if data is not None:
            with self._sftp.open(tmp, "wb") as fh:
                fh.write(data)
        else:
            self._sftp.put(str(local), tmp)
        self._sftp.posix_rename(tmp, remote)

    def _start_runner(self) -> None:
        script = build_runner_script()
        digest = hashlib.sha256(script.encode()).hexdigest()[:16]
        self._mkdirs(f"{self._workdir()}/models")
        runner = f"{self._workdir()}/ofahw_runner_{digest}.py"
        self._put(script.encode(), None, runner)
        options = {**self.options, "trtexec": self.ssh.get("trtexec"), "heartbeat_s": self.heartbeat_s}
        command = (f"cd {shlex.quote(self._workdir())} && exec {shlex.quote(self.ssh['python'])} "
                   f"{shlex.quote(Path(runner).name)} {shlex.quote(json.dumps(options))}")
        channel = self._client.get_transport().open_session()
        channel.exec_command(command)
        self._channel = channel
        self._reader = channel.makefile("r")
        self._stdin = channel.makefile_stdin("w")
        first = self._read_event(timeout=120)
        if first is None:
            code = channel.recv_exit_status()
            err = channel.makefile_stderr("rb").read().decode(errors="replace").strip()
            raise TargetError(f"target '{self.name}': the remote runner did not start with {self.ssh['python']} "
                              f"(exit status {code}: {err.splitlines()[-1] if err else 'no output'}); the device needs "
                              f"{INSTALL_HINT[self.options['runtime']]}")
        if first.get("event") == "fatal":
            raise TargetError(f"target '{self.name}': {first['error']}; install it on the device: {first.get('install')}")
        self._remote_meta = first["metadata"]

    def _read_event(self, timeout: float) -> dict | None:
        self._channel.settimeout(timeout)
        while True:
            line = self._reader.readline()
            if not line:
                return None
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue  # a stray line from the device's environment

    def _run_commands(self, key: str) -> list[dict]:
        done = []
        for command in self.ssh[key]:
            code, out, err = self._exec(command)
            if code != 0:
                raise TargetError(f"target '{self.name}': {key} command {command!r} failed with status {code}: "
                                  f"{(err or out).strip()[-300:]}")
            done.append({"command": command, "output": out.strip()[-500:]})
        return done

    def open(self) -> None:
        self._connect()
        self._commands_before = self._run_commands("before")
        self._start_runner()
        super().open()

    def close(self) -> None:
        try:
            if self._channel is not None and not self._channel.closed:
                try:
                    self._stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                    self._stdin.flush()
                except OSError:
                    pass
            if self._client is not None and self._client.get_transport() and self._client.get_transport().is_active():
                self._run_commands("after")
                self._exec(f"rm -f {shlex.quote(self._workdir())}/models/*.part-* {shlex.quote(self._workdir())}/*.part-*")
        finally:
            if self._client is not None:
                self._client.close()
            self._client = self._sftp = self._channel = None
            super().close()

    # -- measuring ----------------------------------------------------------------------------
    def metadata(self) -> dict:
        settings = self._resolved()
        return {**self._remote_meta, "transport": "ssh", "host": settings["hostname"], "user": settings["user"],
                "host_key": self.host_key_note or "known_hosts", "commands_before": getattr(self, "_commands_before", []),
                **{k: v for k, v in self.options.items() if v is not None}}

    def _upload(self, artifact: Artifact) -> str:
        local = self.model_file(artifact)
        if str(local) not in self._uploaded:
            digest = hashlib.sha256(local.read_bytes()).hexdigest()[:32]
            remote = f"models/{digest}.onnx"
            self._put(None, local, f"{self._workdir()}/{remote}")
            self._uploaded[str(local)] = remote
        return self._uploaded[str(local)]

    def build_engine(self, onnx: Path, engine: Path, precision: str = "fp16") -> dict:
        """Build a TensorRT engine of the ONNX file ``onnx`` with the device's trtexec and fetch it
        to ``engine`` (written atomically). The target must be open. Returns where and how it was built."""
        if not self._open:
            raise RuntimeError(f"target {self.name} is not open; use it as a context manager")
        digest = hashlib.sha256(Path(onnx).read_bytes()).hexdigest()[:32]
        remote = f"{self._workdir()}/models/{digest}.onnx"
        self._put(None, Path(onnx), remote)
        built = f"{self._workdir()}/models/{digest}.{precision}.engine"
        trtexec = self.ssh.get("trtexec") or "/usr/src/tensorrt/bin/trtexec"
        command = " ".join(shlex.quote(a) for a in [trtexec, f"--onnx={remote}", f"--saveEngine={built}", "--skipInference",
                                                     *(["--fp16"] if precision == "fp16" else [])])
        code, out, err = self._exec(command, timeout=3600)
        if code != 0:
            tail = (err or out).strip().splitlines()[-1:] or ["no output"]
            raise TargetError(f"target '{self.name}': trtexec could not build an engine (status {code}: {tail[0]})")
        partial = engine.with_name(engine.name + ".part")
        self._sftp.get(built, str(partial))
        partial.replace(engine)
        return {"built_on": f"target {self.name} ({self._resolved()['hostname']}) with {trtexec}", "precision": precision,
                "device": {k: self._remote_meta.get(k) for k in ("model", "runtime_version") if self._remote_meta.get(k)}}

    def check_energy(self, sensor: dict | None = None) -> dict:
        """What the device's runner finds of the sensor ``sensor`` names; a TargetError where none is readable."""
        return self._ask({"id": "energy-check", "energy_check": sensor or {}})["sensor"]

    def measure_energy(self, artifact: Artifact, sensor: dict | None = None) -> EnergyMeasurement:
        """Energy per inference measured on the device by the runner, with the device's sensor
        (Jetson rails through hwmon / ina3221x / tegrastats, RAPL) that ``sensor`` names."""
        settings = sensor or {}
        job = {"id": "energy", "path": self._upload(artifact), "input_shape": list(artifact.input_shape), "energy": settings}
        return EnergyMeasurement(**self._ask(job)["energy"])

    def _ask(self, job: dict) -> dict:
        """Send one job to the runner and wait for its answer (a TargetError if it reports one)."""
        if not self._open:
            raise RuntimeError(f"target {self.name} is not open; use it as a context manager")
        self._stdin.write(json.dumps(job) + "\n")
        self._stdin.flush()
        while True:
            try:
                event = self._read_event(timeout=self.silence_s)
            except TimeoutError:
                raise TargetError(f"target '{self.name}': the device sent nothing for {self.silence_s:.0f} s") from None
            if event is None:
                raise TargetError(f"target '{self.name}': the remote runner stopped")
            if event.get("id") == job["id"]:
                break
        if "error" in event:
            raise TargetError(f"target '{self.name}': {event['error']}")
        return event

    def _prepare(self, artifact):  # pragma: no cover - the SSH target measures in batches only
        raise NotImplementedError

    def measure(self, artifact: Artifact, protocol: Protocol | None = None) -> Measurement:
        return next(self.measure_batch([(artifact, protocol or self.protocol)]))

    def measure_batch(self, jobs: list[tuple[Artifact, Protocol]]) -> Iterator[Measurement]:
        """Upload the batch's models, send all jobs to the runner, and yield results in order as
        they stream back. A dropped connection or a killed runner is retried with back-off from
        the first job without a result, so nothing is lost or measured twice."""
        if not self._open:
            raise RuntimeError(f"target {self.name} is not open; use it as a context manager")
        next_job, attempt = 0, 0
        while next_job < len(jobs):
            try:
                remaining = jobs[next_job:]
                paths = [self._upload(a) for a, _ in remaining]
                for i, ((artifact, protocol), path) in enumerate(zip(remaining, paths, strict=True)):
                    job = {"id": next_job + i, "path": path, "input_shape": list(artifact.input_shape), "protocol": protocol.to_dict()}
                    self._stdin.write(json.dumps(job) + "\n")
                self._stdin.flush()
                while next_job < len(jobs):
                    event = self._read_event(timeout=self.silence_s)  # heartbeats (no "id") only reset it
                    if event is None:
                        raise ConnectionError("the remote runner stopped")
                    if event.get("id") != next_job:
                        continue
                    if "error" in event:
                        raise TargetError(f"target '{self.name}': measuring {jobs[next_job][0].key} failed on the device: {event['error']}")
                    next_job += 1
                    attempt = 0
                    yield Measurement.from_dict(event["measurement"])
            except (OSError, EOFError, paramiko.SSHException) as exc:  # socket timeouts and resets are OSErrors
                attempt += 1
                if attempt > self.ssh["retries"]:
                    raise TargetError(f"target '{self.name}': lost the device after {self.ssh['retries']} retries ({exc}); "
                                      "finished measurements are saved, rerun to resume") from None
                time.sleep(min(2 ** (attempt - 1), 30))
                self._reconnect()

    def _reconnect(self) -> None:
        try:
            if self._client is not None:
                self._client.close()
        finally:
            self._client = self._sftp = self._channel = None
        self._uploaded.clear()
        self._connect()
        self._start_runner()


def _validate_ssh(name: str, ssh: dict) -> dict:
    if not isinstance(ssh, dict) or not ssh.get("host"):
        raise TargetError(f"target '{name}': an ssh target needs ssh.host (a host name, address or ~/.ssh/config alias)")
    unknown = set(ssh) - SSH_KEYS
    if unknown:
        raise TargetError(f"target '{name}': unknown ssh settings {sorted(unknown)} (known: {sorted(SSH_KEYS)})")
    if "password" in ssh:
        raise TargetError(f"target '{name}': passwords are not stored; use a key or an SSH agent")
    out = {"python": "python3", "workdir": ".cache/ofahw-remote", "before": [], "after": [], "connect_timeout": 15,
           "retries": 4, **ssh}
    for field in ("host", "user", "python", "workdir", "key", "known_hosts", "trtexec"):
        value = out.get(field)
        if value is not None and (not isinstance(value, str) or any(c in value for c in "\n\r\0")):
            raise TargetError(f"target '{name}': ssh.{field} must be a single-line string")
    if str(out["host"]).startswith("-") or (out.get("user") or "").startswith("-"):
        raise TargetError(f"target '{name}': ssh.host and ssh.user must not start with '-'")
    out["workdir"] = out["workdir"][2:] if out["workdir"].startswith("~/") else out["workdir"]
    for field in ("before", "after"):
        if not isinstance(out[field], list) or not all(isinstance(c, str) for c in out[field]):
            raise TargetError(f"target '{name}': ssh.{field} must be a list of shell commands")
    pinned = out.get("host_key_fingerprint")
    if pinned is not None and not _FINGERPRINT.match(str(pinned)):
        raise TargetError(f"target '{name}': ssh.host_key_fingerprint must look like SHA256:<43 base64 characters>")
    return out
