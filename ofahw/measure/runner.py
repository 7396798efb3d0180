"""The remote runner: one file shipped to a device (with ``protocol.py`` and ``host.py`` prepended
by ``build_runner_script``) that applies ofahw's measurement protocol there.

It needs python3 + numpy + onnxruntime for the ``onnxruntime`` runtime, python3 + numpy + openvino
for ``openvino``, or a ``trtexec`` binary for ``trtexec``; int8 models arrive quantized. It reads
one JSON job per line on stdin and writes one JSON line per event on stdout:
``{"event": "ready", "metadata": {...}}`` first (or ``{"event": "fatal", ...}`` and exit 3), then
``{"id": ..., "measurement": {...}}`` or ``{"id": ..., "error": "..."}`` per job, and
``{"event": "alive", "job": ...}`` every ``heartbeat_s`` while a job runs.
"""

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from ofahw.measure.host import host_facts, openvino_core, openvino_request, ort_session_options, read_text  # ofahw:local-import
from ofahw.measure.power import NoSensor, find_meter, measure_energy_as_set  # ofahw:local-import
from ofahw.measure.protocol import Protocol, run_protocol, summarise  # ofahw:local-import

INSTALL_HINT = {
    "onnxruntime": "python3 -m pip install numpy onnxruntime",
    "openvino": "python3 -m pip install numpy openvino",
    "trtexec": "JetPack's TensorRT (trtexec at /usr/src/tensorrt/bin/trtexec), or set ssh.trtexec in the target file",
}


def device_facts():
    """The host's facts, plus the board's model, temperatures, GPU clock and power mode where it exposes them."""
    facts = {**host_facts(), "model": read_text("/proc/device-tree/model")}
    temps = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        value = read_text(zone + "/temp")
        if value and value.lstrip("-").isdigit():
            temps[read_text(zone + "/type") or os.path.basename(zone)] = int(value) / 1000.0
    facts["temperatures_c"] = temps
    gpu_freq = glob.glob("/sys/devices/gpu.0/devfreq/*/cur_freq") + glob.glob("/sys/devices/platform/*gpu*/devfreq/*/cur_freq")
    facts["gpu_cur_hz"] = read_text(gpu_freq[0]) if gpu_freq else None
    if shutil.which("nvpmodel"):
        try:
            facts["nvpmodel"] = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return facts


class OrtRuntime:
    def __init__(self, options):
        import onnxruntime as ort

        self.ort, self.options = ort, options
        self.version = ort.__version__

    def prepare(self, path, input_shape):
        ort, o = self.ort, self.options
        so = ort_session_options(ort, o.get("threads", 1), o.get("graph_optimization", "all"))
        session = ort.InferenceSession(path, so, providers=o.get("providers") or ["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32)}
        return lambda: session.run(None, feed)

    def measure(self, path, input_shape, protocol):
        return run_protocol(self.prepare(path, input_shape), protocol)


class OpenVinoRuntime:
    """OpenVINO's CPU plugin, compiled for latency (one stream, one infer request)."""

    def __init__(self, options):
        import openvino as ov

        self.ov, self.options = ov, options
        self.version = ov.__version__
        self.compiled = tempfile.TemporaryDirectory(prefix="ofahw-openvino-")  # removed when the runner exits
        self.core = openvino_core(ov, self.compiled.name)
        self.capabilities = list(self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        if options.get("precision") == "bf16" and "BF16" not in self.capabilities:
            raise OSError(f"this CPU has no bf16 support in OpenVINO (it offers {self.capabilities})")

    def prepare(self, path, input_shape):
        o = self.options
        request = openvino_request(self.ov, self.core, path, np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32),
                                   o.get("threads", 1), o.get("precision", "fp32"))
        return request.infer

    def measure(self, path, input_shape, protocol):
        return run_protocol(self.prepare(path, input_shape), protocol)


class TrtexecRuntime:
    """trtexec builds (and caches) an engine, then times it; GPU compute times come from
    ``--exportTimes``. Rounds of timed iterations go on until the protocol's gate holds."""

    def __init__(self, options):
        self.binary = options.get("trtexec") or shutil.which("trtexec") or "/usr/src/tensorrt/bin/trtexec"
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError(f"trtexec not found at {self.binary}")
        self.precision = options.get("precision", "fp32")
        self.version = subprocess.run([self.binary, "--help"], capture_output=True, text=True, timeout=60).stdout.split("\n", 1)[0]

    def _engine(self, path):
        engine = f"{path}.{self.precision}.engine"
        if not os.path.exists(engine):
            # a name of this process's own: the runner of a dropped connection may still be building it
            partial = f"{engine}.part-{os.getpid()}"
            cmd = [self.binary, f"--onnx={path}", f"--saveEngine={partial}", "--skipInference"]
            if self.precision == "fp16":
                cmd.append("--fp16")
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
                if done.returncode != 0:
                    raise RuntimeError("trtexec could not build an engine: " + done.stdout[-400:])
                os.replace(partial, engine)
            finally:  # a failed build's partial file, named by this process, would never be reused
                with contextlib.suppress(FileNotFoundError):
                    os.remove(partial)
        return engine

    def measure(self, path, input_shape, protocol):
        engine = self._engine(path)
        samples, start, warm = [], time.perf_counter(), 0
        while True:
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
                times_file = fh.name
            try:
                iterations = max(protocol.min_repeats, 50)
                done = subprocess.run([self.binary, f"--loadEngine={engine}", f"--iterations={iterations}", "--duration=0",
                                       f"--warmUp={int(protocol.warmup_s * 1000)}", f"--exportTimes={times_file}"],
                                      capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    raise RuntimeError("trtexec failed: " + done.stdout[-400:])
                with open(times_file) as fh:
                    samples += parse_trtexec_times(fh.read())
            finally:
                os.unlink(times_file)
            warm += 1
            ms = np.asarray(samples, dtype=float)
            m = summarise(ms, protocol, warm, float(ms.sum()) / 1e3, time.perf_counter() - start)
            if m.settled or ms.sum() / 1e3 >= protocol.max_time_s or len(samples) >= protocol.max_repeats:
                return m


def parse_trtexec_times(text):
    """GPU compute times (ms) of each iteration in a trtexec ``--exportTimes`` file."""
    records = json.loads(text)
    return [float(r["computeMs"]) for r in records if isinstance(r, dict) and "computeMs" in r]


RUNTIME_CLASSES = {"onnxruntime": OrtRuntime, "openvino": OpenVinoRuntime, "trtexec": TrtexecRuntime}


def measure_job_energy(runtime, job):
    """Energy per inference of the job's model with the device's power sensor (the job's ``energy``
    settings: sensor, rails, window_s, idle_s)."""
    if not hasattr(runtime, "prepare"):
        raise NoSensor(f"energy is measured with the onnxruntime or openvino runtime, not {type(runtime).__name__}")
    with contextlib.closing(find_meter(job["energy"])) as meter:
        return measure_energy_as_set(runtime.prepare(job["path"], tuple(job["input_shape"])), meter, job["energy"]).to_dict()


class Events:
    """The runner's output: whole JSON lines, and a heartbeat every ``heartbeat_s`` while a job runs,
    by which the client tells a device busy for minutes (an engine build) from a lost one."""

    def __init__(self, heartbeat_s):
        self._lock = threading.Lock()
        self._job = None
        threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True).start()

    def emit(self, event):
        line = json.dumps(event) + "\n"
        with self._lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    @contextlib.contextmanager
    def busy(self, job_id):
        self._job = job_id
        try:
            yield
        finally:
            self._job = None

    def _beat(self, interval):
        while True:
            time.sleep(interval)
            job = self._job
            if job is not None:
                try:
                    self.emit({"event": "alive", "job": job})
                except (OSError, ValueError):  # the client is gone
                    return


def main():
    options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    events = Events(float(options.get("heartbeat_s", 15.0)))
    name = options.get("runtime", "onnxruntime")
    try:
        runtime = RUNTIME_CLASSES[name](options)
    except (ImportError, FileNotFoundError, OSError, subprocess.SubprocessError) as exc:
        events.emit({"event": "fatal", "error": f"{name} is not usable on this device: {exc}", "install": INSTALL_HINT.get(name, "")})
        sys.exit(3)
    extra = {"openvino_capabilities": runtime.capabilities} if name == "openvino" else {}
    events.emit({"event": "ready", "metadata": {**device_facts(), "runtime": name, "runtime_version": runtime.version,
                                                 "numpy": np.__version__, **extra}})
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        if job.get("cmd") == "quit":
            break
        with events.busy(job.get("id")):
            try:
                if "energy_check" in job:
                    meter = find_meter(job["energy_check"])
                    meter.close()
                    out = {"id": job["id"], "sensor": meter.describe()}
                elif "energy" in job:
                    out = {"id": job["id"], "energy": measure_job_energy(runtime, job)}
                else:
                    m = runtime.measure(job["path"], tuple(job["input_shape"]), Protocol.from_dict(job["protocol"]))
                    out = {"id": job["id"], "measurement": m.to_dict(), "facts": device_facts() if job.get("facts") else None}
            except NoSensor as exc:
                out = {"id": job["id"], "error": str(exc), "no_sensor": True}
            except Exception as exc:  # one bad model must not end the batch
                out = {"id": job["id"], "error": f"{type(exc).__name__}: {exc}"}
        events.emit(out)


if __name__ == "__main__":
    main()
