"""A target placed on a Ray node: its measurements run in an actor on the node that offers the
resources its file's ``ray`` section names (the node's CPU, its GPU, an SSH device reachable from
it); exporting, the journal, the LUT and the predictor stay in this process, as for a local target.

Models go to the actor as bytes, once per actor. On the node, a file lock per device keeps two
targets from measuring it at the same time, unless a file says ``concurrent: true``."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ofahw._io import content_sha256
from ofahw.cluster.connect import check_version, death_reason, get, nodes_offering, placement_options, require_offered, this_node
from ofahw.errors import Incomplete, TargetError, UserError
from ofahw.export import Artifact
from ofahw.measure import Target

START_TIMEOUT_S = 120.0  # how long a new actor may wait for its node (a device held by another job, a node joining)
MODELS_PREFIX = "ofahw-models-"  # an actor's folder of the models it was sent: ofahw-models-PID-XXXXXXXX in the temp folder


@dataclass(frozen=True)
class ShippedModel:
    """An artifact as it travels to the actor: its ONNX file's bytes the first time, then its digest alone."""

    key: str
    input_shape: tuple[int, ...]
    digest: str
    onnx: bytes | None
    torch: object = None  # the artifact's torch builder (pickled with it), for targets that run torch


class TargetHost:
    """Runs in a Ray actor on the target's node: holds the real target and measures what it is sent."""

    def __init__(self, target: Target, lock: bool):
        target.placement = None  # this actor is its placement: here it measures
        self.target = target
        self.files = models_folder()
        name = hashlib.sha256(target.device_key().encode()).hexdigest()[:16]
        self.lock_path = Path(tempfile.gettempdir()) / f"ofahw-device-{name}.lock" if lock else None

    def open(self) -> dict:
        import ray

        self.target.open()
        return {**this_node(ray), "version": __import__("ofahw").__version__}

    def metadata(self) -> dict:
        return self.target.metadata()

    def _artifact(self, model: ShippedModel) -> Artifact:
        path = self.files / f"{model.digest}.onnx"
        if model.onnx is not None:
            path.write_bytes(model.onnx)
        return Artifact(model.key, model.input_shape, lambda: path, model.torch)

    def _device(self):
        """Exclusive use of the device on this node while measuring (a file lock, so across processes)."""
        return contextlib.nullcontext() if self.lock_path is None else _FileLock(self.lock_path)

    def measure(self, models: list[ShippedModel], protocols: list) -> list:
        jobs = [(self._artifact(m), p) for m, p in zip(models, protocols, strict=True)]
        with self._device():
            return list(self.target.measure_batch(jobs))

    def check_energy(self, sensor: dict | None) -> dict:
        return self.target.check_energy(sensor)

    def measure_energy(self, model: ShippedModel, sensor: dict | None):
        artifact = self._artifact(model)
        with self._device():
            return self.target.measure_energy(artifact, sensor)

    def close(self) -> None:
        self.target.close()
        shutil.rmtree(self.files, ignore_errors=True)


def models_folder() -> Path:
    """A new folder for an actor's models, named by its process id. An actor that is killed (its run
    stopped, its node lost, its start failed) never closes, so the folders of actors whose process
    is gone are removed first: a lost profile of large models would otherwise leave gigabytes behind."""
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{MODELS_PREFIX}*-*"):
        pid = folder.name[len(MODELS_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{MODELS_PREFIX}{os.getpid()}-"))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class _FileLock:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.fh = open(self.path, "a")  # held until __exit__
        fcntl.flock(self.fh, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


class PlacedTarget(Target):
    """``target`` measured on the Ray node its ``placement`` (a file's ``ray`` section) names, or on
    the node ``node_id`` (a target without one: the driver's node, where it takes its turn on the
    device with the targets placed there). A lost node stops the run (an :class:`Incomplete`: the
    campaign's journal keeps what was measured), or, with ``wait_s``, waits that long for a node on
    the same host to offer the resources again."""

    times_groups = False
    made_ahead = "onnx"  # the actor quantizes (a model's int8 form is made where it is measured)

    def __init__(self, target: Target, ray, wait_s: float = 0.0, node_id: str | None = None):
        placement = target.placement or {}
        self.inner, self.ray, self.wait_s, self.node_id = target, ray, wait_s, node_id
        self.resources = dict(placement.get("resources") or {})
        self.lock = not placement.get("concurrent", False)
        self.kind, self.name, self.options, self.protocol = target.kind, target.name, target.options, target.protocol
        self.option_defaults, self.precisions, self.batch_size = target.option_defaults, target.precisions, target.batch_size
        self.source, self.description, self.energy = target.source, target.description, target.energy
        self.placement = None  # placed already (a target with a placement that is not placed is refused)
        self._open = False
        self._actor = None
        self._sent: set[str] = set()  # digests of the models the current actor has
        self.node: dict = {}  # where the actor runs now
        self.nodes: list[dict] = []  # every node it ran on (a lost node that came back is a new node)
        if node_id is None:
            require_offered(ray, self.resources, f"target '{self.name}'")
        # measured on this process's node: its campaign runs in turn with the others measuring here (they
        # export models while they run, which would perturb it)
        here = ray.get_runtime_context().get_node_id()
        self.on_this_machine = (node_id or "") == here or all(n["node_id"] == here for n in nodes_offering(ray, self.resources))

    # what identifies the target's measurements is the target's own
    @property
    def calibration(self):
        return self.inner.calibration

    @calibration.setter
    def calibration(self, value) -> None:
        self.inner.calibration = value

    def describe_runtime(self) -> str:
        return self.inner.describe_runtime()

    def device_key(self) -> str:
        return self.inner.device_key()

    def fingerprint(self) -> dict:
        return self.inner.fingerprint()

    def completed(self, stored: dict | None) -> dict:
        return self.inner.completed(stored)

    def _prepare(self, artifact):
        raise TargetError(f"target '{self.name}' measures on its Ray node, not here")

    # -- the actor ---------------------------------------------------------------------------
    def _start(self, timeout: float, host: str | None = None) -> None:
        """A new actor on a node offering the resources (on ``host``, after a loss), opened."""
        if self.node_id is None:
            options = placement_options(self.resources)
        else:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options = {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(self.node_id, soft=False)}
        self._actor = self.ray.remote(TargetHost).options(**options, max_restarts=0).remote(self.inner, self.lock)
        self._sent = set()
        try:  # a started actor that will not serve is not left behind
            node = self._opened(timeout)
            check_version(node, f"target '{self.name}': its Ray node")
            if host is not None and node["host"] != host:
                raise Incomplete(f"target '{self.name}': its node {host} was lost and {node['host']} now offers {self.resources}; "
                                 "measurements of two devices are not mixed: progress is saved, rerun to resume there or wait "
                                 f"for {host}")
        except BaseException:
            self.ray.kill(self._actor)
            raise
        self.node = node
        self.nodes.append(node)

    def _opened(self, timeout: float) -> dict:
        """The new actor opened on its node: where it runs (as :func:`this_node`, with its ofahw version)."""
        try:
            return get(self.ray, self._actor.open.remote(), timeout=timeout)
        except (self.ray.exceptions.GetTimeoutError, self.ray.exceptions.RayActorError):
            raise Incomplete(f"target '{self.name}': no node offering {self.resources or self.node_id} took its measuring actor "
                             f"within {timeout:.0f} s (is the device held by another job, or its node down?); rerun to resume") from None
        except UserError as exc:
            raise TargetError(f"target '{self.name}' on its Ray node: {exc}") from None

    def _call(self, method: str, *args, ship=None):
        """``method`` on the actor; ``ship`` builds the arguments that hold models (rebuilt for a new
        actor, which has none). A lost node: stop, or wait ``wait_s`` for it and call again."""
        exceptions = self.ray.exceptions
        while True:
            try:
                return get(self.ray, getattr(self._actor, method).remote(*(ship() if ship else args)))
            except exceptions.RayActorError as exc:
                lost = self.node
                if self.wait_s <= 0:
                    raise Incomplete(f"target '{self.name}': its Ray node {lost['host']} ({lost['node_id'][:12]}) was lost "
                                     f"mid-profile ({death_reason(exc)}); what was measured is saved; rerun to resume "
                                     "(--ray-wait SECONDS waits for the node instead)") from None
                self._start(self.wait_s, host=lost["host"])

    def _ship(self, artifact: Artifact) -> ShippedModel:
        """The artifact for the actor; its file is hashed once (each item is measured in several rounds:
        :func:`content_sha256`), and its bytes go only to an actor that has not had them."""
        path = Path(artifact.onnx())
        digest = content_sha256(path).hexdigest()
        data = None if digest in self._sent else path.read_bytes()
        self._sent.add(digest)
        return ShippedModel(artifact.key, tuple(artifact.input_shape), digest, data, artifact.torch)

    # -- the Target interface ----------------------------------------------------------------
    def open(self) -> None:
        self._start(START_TIMEOUT_S + self.wait_s)
        self._open = True

    def close(self) -> None:
        if self._actor is not None:
            try:
                self.ray.get(self._actor.close.remote(), timeout=30)
            except (self.ray.exceptions.RayError, TimeoutError):
                pass  # its node is gone: nothing left to close
            self.ray.kill(self._actor)
            self._actor = None
        self._open = False

    def metadata(self) -> dict:
        return self._call("metadata")

    def where_measured(self) -> dict:
        nodes = [{k: n[k] for k in ("host", "address", "node_id")} for n in self.nodes]
        return {"ray_node": nodes[-1], **({"ray_nodes": nodes} if len(nodes) > 1 else {})} if nodes else {}

    def measure_batch(self, jobs):
        protocols = [p for _, p in jobs]
        yield from self._call("measure", ship=lambda: ([self._ship(a) for a, _ in jobs], protocols))

    def measure(self, artifact, protocol=None):
        return next(iter(self.measure_batch([(artifact, protocol or self.protocol)])))

    def check_energy(self, sensor: dict | None = None) -> dict:
        return self._call("check_energy", sensor)

    def measure_energy(self, artifact, sensor: dict | None = None):
        return self._call("measure_energy", ship=lambda: (self._ship(artifact), sensor))
