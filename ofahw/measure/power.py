"""Power and energy sensors, and energy per inference measured over windows of back-to-back runs.

Sensors: Intel RAPL (``/sys/class/powercap/intel-rapl:N/energy_uj``, a counter that wraps at
``max_energy_range_uj``), NVML's total-energy counter (GPUs from Volta on, ``nvidia-ml-py``), Jetson
INA3221 rails through hwmon (``in*_label`` with ``in*_input`` mV and ``curr*_input`` mA) or the older
``ina3221x`` iio driver (``rail_name_*`` with ``in_power*_input`` mW), and ``tegrastats`` lines. No
sensor is ever guessed at: where none is readable, :class:`NoSensor` says what was looked for.

Standard library and numpy only (NVML aside, imported when used): this module is shipped to remote
devices inside the runner script, as protocol.py is.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?(?![\w.])")


class NoSensor(RuntimeError):
    """No readable power sensor; the message names what was looked for."""


def parse_tegrastats(line: str) -> dict[str, float]:
    """Each power rail's current reading (mW) in one ``tegrastats`` line: ``VDD_IN 4556mW/4556mW``
    (JetPack 5+: current/average) or ``POM_5V_IN 2811/2811`` (JetPack 4, no unit). RAM, SWAP and
    other X/Y figures with other units are not rails and are left out."""
    return {name: float(now) for name, now, _ in _RAIL.findall(line)}


def _read_number(path: str) -> float | None:
    try:
        with open(path) as fh:
            return float(fh.read().strip())
    except (OSError, ValueError):
        return None


class Meter:
    """A sensor: ``kind`` "energy" (``read()`` gives cumulative joules) or "power" (watts now);
    ``period_s``, how often it updates."""

    name = "meter"
    kind = "energy"
    period_s = 0.001

    def read(self) -> float:
        raise NotImplementedError

    def close(self) -> None:
        """Stop what the meter started (a tegrastats process)."""

    def describe(self) -> dict:
        return {"sensor": self.name, "kind": self.kind, "period_s": self.period_s}


class RaplMeter(Meter):
    """Package energy from RAPL counters (summed over packages), wrap-around handled."""

    name, kind, period_s = "rapl", "energy", 0.001

    def __init__(self, root: str = "/sys/class/powercap"):
        self.domains = sorted(d for d in glob.glob(os.path.join(root, "intel-rapl:*")) if re.search(r"intel-rapl:\d+$", d))
        self.ranges = [_read_number(os.path.join(d, "max_energy_range_uj")) for d in self.domains]
        self.last = [_read_number(os.path.join(d, "energy_uj")) for d in self.domains]
        if not self.domains or any(v is None for v in self.last + self.ranges):
            raise NoSensor(f"RAPL: no readable {root}/intel-rapl:N/energy_uj")
        self.total_uj = 0.0

    def read(self) -> float:
        for i, domain in enumerate(self.domains):
            now = _read_number(os.path.join(domain, "energy_uj"))
            delta = now - self.last[i]
            if delta < 0:  # the counter wrapped at max_energy_range_uj
                delta += self.ranges[i]
            self.total_uj += delta
            self.last[i] = now
        return self.total_uj / 1e6


class HwmonRailsMeter(Meter):
    """Power of the named rails of INA3221 monitors through hwmon (mV × mA per channel)."""

    name, kind, period_s = "hwmon", "power", 0.01

    def __init__(self, rails: list[str], root: str = "/sys/class/hwmon"):
        self.channels = {}
        for label_file in sorted(glob.glob(os.path.join(root, "hwmon*", "in*_label"))):
            try:
                with open(label_file) as fh:
                    label = fh.read().strip()
            except OSError:
                continue
            index = re.search(r"in(\d+)_label$", label_file).group(1)
            folder = os.path.dirname(label_file)
            self.channels[label] = (os.path.join(folder, f"in{index}_input"), os.path.join(folder, f"curr{index}_input"))
        self.rails = _chosen(rails, self.channels, f"hwmon INA3221 rails under {root}")

    def read(self) -> float:
        return sum(_read_number(v) * _read_number(c) / 1e6 for v, c in (self.channels[r] for r in self.rails))


class IioRailsMeter(Meter):
    """Power of the named rails of the older ``ina3221x`` iio driver (``in_power*_input`` in mW)."""

    name, kind, period_s = "ina3221x", "power", 0.01

    def __init__(self, rails: list[str], root: str = "/sys/bus/i2c/drivers/ina3221x"):
        self.channels = {}
        for name_file in sorted(glob.glob(os.path.join(root, "*", "iio:device*", "rail_name_*"))):
            try:
                with open(name_file) as fh:
                    label = fh.read().strip()
            except OSError:
                continue
            index = name_file.rsplit("_", 1)[1]
            self.channels[label] = os.path.join(os.path.dirname(name_file), f"in_power{index}_input")
        self.rails = _chosen(rails, self.channels, f"ina3221x iio rails under {root}")

    def read(self) -> float:
        return sum(_read_number(self.channels[r]) / 1e3 for r in self.rails)


class TegrastatsMeter(Meter):
    """The named rails' power from a ``tegrastats --interval MS`` process (its latest line)."""

    name, kind = "tegrastats", "power"

    def __init__(self, rails: list[str], interval_ms: int = 100, binary: str | None = None):
        binary = binary or shutil.which("tegrastats")
        if not binary:
            raise NoSensor("tegrastats: not on PATH")
        self.period_s = interval_ms / 1000
        self.process = subprocess.Popen([binary, "--interval", str(interval_ms)], stdout=subprocess.PIPE, text=True)
        self.latest: dict[str, float] = {}
        self.ready = threading.Event()
        threading.Thread(target=self._follow, daemon=True).start()
        if not self.ready.wait(max(5.0, 10 * self.period_s)):
            self.close()
            raise NoSensor("tegrastats: printed no line with power rails")
        self.rails = _chosen(rails, self.latest, "tegrastats rails")

    def _follow(self) -> None:
        for line in self.process.stdout:
            rails = parse_tegrastats(line)
            if rails:
                self.latest = rails
                self.ready.set()

    def read(self) -> float:
        return sum(self.latest[r] for r in self.rails) / 1e3

    def close(self) -> None:
        self.process.terminate()


class NvmlMeter(Meter):
    """A GPU's total-energy counter through NVML (mJ since the driver loaded; Volta and newer)."""

    name, kind, period_s = "nvml", "energy", 0.1  # NVML updates every 20-100 ms

    def __init__(self, index: int = 0):
        try:
            import pynvml
        except ImportError:
            raise NoSensor("NVML: the nvidia-ml-py package is not installed (pip install nvidia-ml-py)") from None
        try:
            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except pynvml.NVMLError as exc:
            raise NoSensor(f"NVML: {exc}") from None
        self.nvml = pynvml

    def read(self) -> float:
        return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1e3


def _chosen(rails: list[str], found, where: str) -> list[str]:
    if not found:
        raise NoSensor(f"{where}: none found")
    rails = list(rails or [])
    if not rails:
        raise NoSensor(f"{where}: found {sorted(found)}, but the target file names no rail (energy.rails)")
    missing = [r for r in rails if r not in found]
    if missing:
        raise NoSensor(f"{where}: no rail {missing} (found {sorted(found)})")
    return rails


# sensor name -> its meter from a target file's energy settings (``root`` moves a sysfs tree, for
# boards that mount it elsewhere)
SENSORS = {"rapl": lambda s: RaplMeter(s.get("root", "/sys/class/powercap")), "nvml": lambda s: NvmlMeter(int(s.get("gpu", 0))),
           "hwmon": lambda s: HwmonRailsMeter(s.get("rails"), s.get("root", "/sys/class/hwmon")),
           "ina3221x": lambda s: IioRailsMeter(s.get("rails"), s.get("root", "/sys/bus/i2c/drivers/ina3221x")),
           "tegrastats": lambda s: TegrastatsMeter(s.get("rails"), int(s.get("interval_ms", 100)))}


def find_meter(settings: dict | None = None, order=("nvml", "hwmon", "ina3221x", "tegrastats", "rapl")) -> Meter:
    """The sensor ``settings["sensor"]`` names, or with ``auto`` (the default) the first readable
    one of ``order``. Raises :class:`NoSensor` naming everything looked for."""
    settings = dict(settings or {})
    wanted = settings.get("sensor", "auto")
    if wanted != "auto" and wanted not in SENSORS:
        raise NoSensor(f"unknown sensor {wanted!r} (known: auto, {', '.join(SENSORS)})")
    tried = []
    for name in ([wanted] if wanted != "auto" else order):
        try:
            return SENSORS[name](settings)
        except NoSensor as exc:
            tried.append(str(exc))
    raise NoSensor("no readable power sensor; looked for " + "; ".join(tried))


@dataclass(frozen=True)
class EnergyMeasurement:
    """Energy per inference (mJ, idle power subtracted) over windows of back-to-back runs."""

    mj: float  # median over windows
    std_mj: float
    rel_se: float
    windows: int
    inferences: int
    window_s: float
    idle_w: float
    settled: bool
    sensor: str

    def to_dict(self) -> dict:
        return asdict(self)


class _Integrator:
    """Energy (J) from a meter since ``start``: counter differences, or power samples (one per
    sensor period at most) integrated with the trapezoid rule."""

    def __init__(self, meter: Meter, clock):
        self.meter, self.clock = meter, clock
        self.t = clock()
        self.value = meter.read()
        self.joules = 0.0

    def sample(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.t < self.meter.period_s:
            return
        value = self.meter.read()
        if self.meter.kind == "energy":
            self.joules += value - self.value
        else:
            self.joules += 0.5 * (value + self.value) * (now - self.t)
        self.t, self.value = now, value


def idle_power(meter: Meter, seconds: float, clock=time.perf_counter, sleep=time.sleep) -> float:
    """Mean power (W) over ``seconds`` of doing nothing, sampled at the sensor's period."""
    integrator = _Integrator(meter, clock)
    start = integrator.t
    while clock() - start < seconds:
        sleep(meter.period_s)
        integrator.sample()
    integrator.sample(force=True)
    return integrator.joules / max(integrator.t - start, 1e-9)


def measure_energy_as_set(run, meter: Meter, settings: dict | None) -> EnergyMeasurement:
    """:func:`measure_energy` with a target file's ``energy`` settings (``window_s``, ``idle_s``)."""
    settings = settings or {}
    return measure_energy(run, meter, window_s=float(settings.get("window_s", 1.0)), idle_s=float(settings.get("idle_s", 1.0)))


def measure_energy(run, meter: Meter, window_s: float = 1.0, min_windows: int = 3, max_windows: int = 12,
                   gate: float = 0.03, idle_s: float = 1.0, clock=time.perf_counter, sleep=time.sleep) -> EnergyMeasurement:
    """Energy per call of ``run`` (mJ): idle power measured just before, then windows of back-to-back
    runs lasting at least ``window_s`` and three sensor periods, each giving (energy − idle power ×
    duration) / runs; windows repeat until the median's relative standard error is at most ``gate``
    (after ``min_windows``) or ``max_windows`` were taken."""
    idle_w = idle_power(meter, idle_s, clock, sleep)
    window = max(window_s, 3 * meter.period_s)
    per_window, runs = [], 0
    while len(per_window) < max_windows:
        integrator = _Integrator(meter, clock)
        start, n = integrator.t, 0
        while clock() - start < window:
            run()
            n += 1
            integrator.sample()
        integrator.sample(force=True)
        per_window.append((integrator.joules - idle_w * (integrator.t - start)) / n * 1e3)
        runs += n
        values = np.asarray(per_window)
        rel_se = float(values.std(ddof=1) / np.sqrt(len(values)) / abs(np.median(values))) if len(values) > 1 else float("inf")
        if len(values) >= min_windows and rel_se <= gate:
            break
    return EnergyMeasurement(float(np.median(values)), float(values.std(ddof=1)) if len(values) > 1 else 0.0, rel_se,
                             len(values), runs, window, idle_w, bool(rel_se <= gate), meter.name)
