"""``ofahw evaluate --ray``: subnets are tasks, workers are Ray actors that load the supernet once
and evaluate one subnet at a time; this process writes every result (:class:`EvaluationOutputs`),
so the output folder is written as by a local run, once per subnet, and a rerun resumes.

A worker (or its node) lost mid-run: its subnet goes back to the queue and a replacement worker is
started wherever the cluster can place one."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

from ofahw.cluster.connect import check_version, connect, death_reason, get, require_offered, this_node
from ofahw.errors import Incomplete, UserError
from ofahw.evaluate import EvaluationOutputs, Evaluator, ImageFolder, progress_text
from ofahw.space import Space

MAX_REPLACEMENTS = 3  # per worker asked for: more losses than that stop the run (progress saved)


class EvaluationWorker:
    """Runs in a Ray actor: one loaded supernet, subnets evaluated one at a time."""

    def __init__(self, space: Space, weights: Path, data: ImageFolder, calibration: ImageFolder, batch_size: int, threads: int):
        self.args = (space, weights, data, calibration, batch_size)
        self.threads = threads
        self.evaluator = None

    def start(self) -> dict:
        """Load the supernet (after checking this node sees the same files as the driver); where this worker runs."""
        import ray
        import torch

        space, weights, data, calibration, batch_size = self.args
        node = this_node(ray)
        for folder in (data, calibration):
            missing = [p for p, _ in folder.samples if not p.is_file()]
            if missing:
                raise UserError(f"worker on {node['host']}: {len(missing)} of the {len(folder)} images of {folder.root} are not "
                                f"on this node (first: {missing[0]}); --ray reads --data, --calib and --weights at the same "
                                "paths on every node")
        if not Path(weights).is_file():
            raise UserError(f"worker on {node['host']}: weights file {weights} is not on this node; --ray reads --data, --calib "
                            "and --weights at the same paths on every node")
        device = "cuda" if ray.get_gpu_ids() else "cpu"
        if device == "cpu":
            torch.set_num_threads(self.threads)
        self.evaluator = Evaluator(space, weights, data, calibration, batch_size, device)
        return {**node, "device": device, "version": __import__("ofahw").__version__}

    def evaluate(self, config: dict):
        return self.evaluator.evaluate(config)


def evaluate_on_ray(space: Space, configs: list[dict], weights: Path, data: ImageFolder, calibration: ImageFolder, out: Path,
                    address: str = "auto", workers: int | None = None, worker_cpus: int = 1, batch_size: int = 64,
                    start_timeout_s: float = 300.0, log: Callable[[str], None] = print) -> list[dict]:
    """As :func:`ofahw.evaluate.evaluate_subnets`, on the Ray cluster at ``address``: one worker per
    GPU where the cluster has GPUs, else ``workers`` (default: as many as its CPUs hold) of
    ``worker_cpus`` CPUs (and torch threads) each. Stops with progress saved when no worker can be
    placed for ``start_timeout_s`` seconds while work is left."""
    ray = connect(address)
    outputs = EvaluationOutputs(out, data, calibration, weights)
    keys = [space.config_hash(space.canonical(c)) for c in configs]
    todo = deque((k, c) for k, c in dict(zip(keys, configs, strict=True)).items() if k not in outputs.done)
    if todo:
        pool = _WorkerPool(ray, space, weights, data, calibration, batch_size, workers, worker_cpus, len(todo))
        try:
            pool.run(todo, outputs, keys, start_timeout_s, log)
        finally:
            pool.shutdown()
    outputs.finish(keys)
    return [outputs.done[k] for k in dict.fromkeys(keys)]


class _WorkerPool:
    def __init__(self, ray, space, weights, data, calibration, batch_size, workers, worker_cpus, subnets):
        self.ray = ray
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if workers is not None and workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        if worker_cpus < 1:
            raise UserError(f"--worker-cpus must be at least 1, got {worker_cpus}")
        self.options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": worker_cpus}
        require_offered(ray, {"GPU": 1} if gpus else {"CPU": worker_cpus}, "an evaluation worker")
        n = workers or (gpus or max(1, int(ray.cluster_resources().get("CPU", 1)) // worker_cpus))
        self.size = min(n, subnets)
        self.args = (space, Path(weights).resolve(), data, calibration, batch_size, worker_cpus)
        self.actor_class = ray.remote(EvaluationWorker)
        self.starting: dict = {}  # ref of start() -> worker
        self.running: dict = {}  # ref of evaluate() -> (worker, key, config)
        self.idle: list = []
        self.nodes: dict = {}  # worker -> where it runs
        self.replacements = 0

    def _start_worker(self) -> None:
        worker = self.actor_class.options(**self.options, max_restarts=0).remote(*self.args)
        self.starting[worker.start.remote()] = worker

    def run(self, todo: deque, outputs: EvaluationOutputs, keys: list[str], start_timeout_s: float, log) -> None:
        exceptions = self.ray.exceptions
        for _ in range(self.size):
            self._start_worker()
        log(f"evaluating {len(todo)} subnets on Ray with {self.size} workers ({self.options})")
        while todo or self.running:
            while todo and self.idle:
                worker = self.idle.pop()
                key, config = todo.popleft()
                self.running[worker.evaluate.remote(config)] = (worker, key, config)
            ready, _ = self.ray.wait([*self.running, *self.starting], num_returns=1,
                                     timeout=None if self.running else start_timeout_s)
            if not ready:
                raise Incomplete(f"no Ray worker could be placed for {start_timeout_s:.0f} s with {len(todo)} subnets left; "
                                 f"finished subnets are saved in {outputs.accuracy_path}; rerun to resume")
            ref = ready[0]
            if ref in self.starting:
                worker = self.starting.pop(ref)
                try:
                    self.nodes[worker] = node = get(self.ray, ref)
                except exceptions.RayActorError as exc:
                    self._replace(f"a worker died while starting: {death_reason(exc)}", log)
                    continue
                check_version(node, "worker on")
                self.idle.append(worker)
                continue
            worker, key, config = self.running.pop(ref)
            try:
                result = get(self.ray, ref)
            except exceptions.RayActorError as exc:
                todo.appendleft((key, config))
                where = self.nodes.pop(worker, {}).get("host", "?")
                self._replace(f"worker on {where} lost ({death_reason(exc)}); subnet {key} goes to another worker", log)
                continue
            record = outputs.write(result)
            self.idle.append(worker)
            done = sum(k in outputs.done for k in dict.fromkeys(keys))
            node = self.nodes[worker]
            log(progress_text(done, len(set(keys)), record, f" (worker on {node['host']}, node {node['node_id'][:12]}, {node['device']})"))

    def _replace(self, what: str, log) -> None:
        self.replacements += 1
        if self.replacements > MAX_REPLACEMENTS * self.size:
            raise Incomplete(f"{what}; {self.replacements} workers lost, giving up; finished subnets are saved; rerun to resume")
        log(f"{what}; starting a replacement")
        self._start_worker()

    def shutdown(self) -> None:
        for worker in [*self.starting.values(), *(w for w, _, _ in self.running.values()), *self.idle]:
            self.ray.kill(worker)

