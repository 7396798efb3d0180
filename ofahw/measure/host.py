"""Facts about the machine this code runs on that bear on latency (CPU model, its instruction sets,
cores, governor, clocks), and the runtimes' settings for a latency measurement (onnxruntime's
session options, OpenVINO's compile configuration). Standard library only: this module is shipped
to remote devices inside the runner script, as protocol.py is."""

import os
import platform

# graph_optimization setting -> onnxruntime's GraphOptimizationLevel name
GRAPH_OPTIMIZATION = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                      "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def read_text(path):
    """A small system file's stripped text, or None where it cannot be read."""
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def cpu_model():
    for line in (read_text("/proc/cpuinfo") or "").splitlines():
        if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# /proc/cpuinfo flag -> the instruction-set name a user knows (x86, then Arm's "Features")
ISA_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
             "avx512_bf16": "AVX-512 BF16", "amx_tile": "AMX", "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8",
             "asimd": "NEON", "asimddp": "NEON dot product", "i8mm": "Arm I8MM", "bf16": "Arm BF16", "sve": "SVE",
             "fphp": "Arm FP16"}
# precision setting -> OpenVINO's INFERENCE_PRECISION_HINT (an int8 model runs its quantized ops in
# int8 whatever the hint; the rest of it in f32)
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def cpu_isa():
    """The CPU's instruction sets that bear on inference speed, as named in ``ISA_FLAGS``."""
    flags = set()
    for line in (read_text("/proc/cpuinfo") or "").splitlines():
        if line.lower().startswith(("flags", "features")):
            flags.update(line.split(":", 1)[1].split())
    return [name for flag, name in ISA_FLAGS.items() if flag in flags]


def host_facts():
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    max_khz = read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_isa": cpu_isa(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity) if affinity is not None else os.cpu_count(),
        "governor": read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_max_mhz": int(max_khz) / 1000 if max_khz and max_khz.isdigit() else None,
        "cpu_cur_khz": read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def ort_session_options(ort, threads=1, graph_optimization="all"):
    """onnxruntime session options for timing one model: ``threads`` intra-op threads, one inter-op
    thread, sequential execution, the given graph optimisation level, quiet logs."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION[graph_optimization])
    so.log_severity_level = 3
    return so


def openvino_config(threads=1, precision="fp32"):
    """OpenVINO CPU plugin settings for timing one model at batch latency: the LATENCY hint, one
    stream (so one infer request has the CPU), ``threads`` inference threads, and the precision."""
    return {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(int(threads)),
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision]}


def openvino_core(ov, cache_dir):
    """An OpenVINO Core that keeps what it compiles in ``cache_dir`` (OpenVINO's model cache): a
    campaign compiles each model anew in every round, and loading the compiled model back took a fifth
    of compiling it here (an int8 w1.2 subnet at 224, batch 8: 0.19 s against 0.9-1.1 s), while each round
    still gets a compiled model and infer request of its own. OpenVINO keys a model file by its
    modification time too, so the ONNX caches mark use by access time alone (``mark_used``)."""
    core = ov.Core()
    core.set_property({"CACHE_DIR": str(cache_dir)})
    return core


def openvino_request(ov, core, path, inputs, threads=1, precision="fp32"):
    """An infer request for the model at ``path`` compiled on the CPU with ``openvino_config``, its
    input set once to ``inputs`` (an array), so that ``infer()`` times the model alone."""
    compiled = core.compile_model(str(path), "CPU", openvino_config(threads, precision))
    request = compiled.create_infer_request()
    request.set_input_tensor(ov.Tensor(inputs))
    return request
