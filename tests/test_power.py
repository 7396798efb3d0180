"""Power sensors and energy per inference, on sensor files and lines in the formats devices write
(no sensor is readable on this machine, which the last test checks)."""

import numpy as np
import pytest
from conftest import fitted_accuracy_file

from ofahw.measure.power import (
    HwmonRailsMeter,
    IioRailsMeter,
    Meter,
    NoSensor,
    RaplMeter,
    find_meter,
    measure_energy,
    parse_tegrastats,
)

# tegrastats lines in the formats of JetPack 4 (Nano: POM_ rails, no unit), JetPack 5 (Xavier NX:
# VDD_IN ...mW/...mW) and AGX Orin (VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0)
NANO = ("RAM 2005/3956MB (lfb 145x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) CPU [13%@1479,7%@1479,6%@1479,"
        "6%@1479] EMC_FREQ 3%@1600 GR3D_FREQ 0%@921 APE 25 PLL@29C CPU@31.5C PMIC@100C GPU@30C AO@37C thermal@30.75C "
        "POM_5V_IN 2356/2356 POM_5V_GPU 0/0 POM_5V_CPU 396/396")
XAVIER_NX = ("12-02-2026 10:00:01 RAM 3123/6854MB (lfb 1x4MB) SWAP 0/3427MB (cached 0MB) CPU [4%@1190,2%@1190,off,off,off,off] "
             "EMC_FREQ 0%@1600 GR3D_FREQ 0%@114 VIC_FREQ 115 APE 150 AUX@32C CPU@33.5C thermal@32.35C AO@32C GPU@31C PMIC@50C "
             "VDD_IN 4556mW/4556mW VDD_CPU_GPU_CV 573mW/573mW VDD_SOC 1336mW/1336mW")
AGX_ORIN = ("RAM 4722/30536MB (lfb 6001x4MB) SWAP 0/15268MB (cached 0MB) CPU [1%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 "
            "GR3D_FREQ 0%@[305,305] VIC_FREQ 729 APE 174 CV0@-256C CPU@46.093C Tboard@35C SOC2@42.281C Tdiode@37.5C "
            "VDD_GPU_SOC 2417mW/2300mW VDD_CPU_CV 402mW/410mW VIN_SYS_5V0 3422mW/3400mW NC 0mW/0mW")


@pytest.mark.parametrize("line, rails", [
    (NANO, {"POM_5V_IN": 2356, "POM_5V_GPU": 0, "POM_5V_CPU": 396}),
    (XAVIER_NX, {"VDD_IN": 4556, "VDD_CPU_GPU_CV": 573, "VDD_SOC": 1336}),
    (AGX_ORIN, {"VDD_GPU_SOC": 2417, "VDD_CPU_CV": 402, "VIN_SYS_5V0": 3422, "NC": 0}),
])
def test_tegrastats_rails(line, rails):
    assert parse_tegrastats(line) == rails  # RAM, SWAP, IRAM figures are not rails; the current value, not the average


def test_hwmon_ina3221_rails(tmp_path):
    folder = tmp_path / "hwmon3"
    folder.mkdir()
    for index, (label, mv, ma) in enumerate([("VDD_IN", 5000, 900), ("VDD_CPU_GPU_CV", 5000, 120), ("VDD_SOC", 5000, 260)], 1):
        (folder / f"in{index}_label").write_text(label + "\n")
        (folder / f"in{index}_input").write_text(f"{mv}\n")
        (folder / f"curr{index}_input").write_text(f"{ma}\n")
    assert HwmonRailsMeter(["VDD_IN"], str(tmp_path)).read() == pytest.approx(4.5)
    assert HwmonRailsMeter(["VDD_CPU_GPU_CV", "VDD_SOC"], str(tmp_path)).read() == pytest.approx(0.6 + 1.3)
    with pytest.raises(NoSensor, match="no rail \\['POM_5V_IN'\\]"):
        HwmonRailsMeter(["POM_5V_IN"], str(tmp_path))
    with pytest.raises(NoSensor, match="names no rail"):
        HwmonRailsMeter([], str(tmp_path))


def test_ina3221x_iio_rails(tmp_path):
    device = tmp_path / "6-0040" / "iio:device0"
    device.mkdir(parents=True)
    for index, (name, mw) in enumerate([("POM_5V_IN", 2356), ("POM_5V_GPU", 40), ("POM_5V_CPU", 396)]):
        (device / f"rail_name_{index}").write_text(name + "\n")
        (device / f"in_power{index}_input").write_text(f"{mw}\n")
    assert IioRailsMeter(["POM_5V_IN"], str(tmp_path)).read() == pytest.approx(2.356)


def test_rapl_counter_wraps_around(tmp_path):
    domain = tmp_path / "intel-rapl:0"
    (domain / "intel-rapl:0:0").mkdir(parents=True)  # a subzone: not counted twice
    (domain / "max_energy_range_uj").write_text("262143328850\n")
    (domain / "energy_uj").write_text("262143000000\n")
    (domain / "intel-rapl:0:0" / "energy_uj").write_text("5\n")
    meter = RaplMeter(str(tmp_path))
    (domain / "energy_uj").write_text("262143328000\n")
    assert meter.read() == pytest.approx(328000 / 1e6)
    (domain / "energy_uj").write_text("1000000\n")  # wrapped: 850 µJ to the top, then 1 J
    assert meter.read() == pytest.approx((328000 + 850 + 1_000_000) / 1e6)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def advance(self, seconds):
        self.t += seconds


class TracePower(Meter):
    """Power readings from a recorded trace: 2.0 W idle until 1.5 s, then 5.0 W while running."""

    name, kind, period_s = "trace", "power", 0.05

    def __init__(self, clock, times, watts):
        self.clock, self.times, self.watts = clock, np.asarray(times), np.asarray(watts)

    def read(self):
        return float(self.watts[np.searchsorted(self.times, self.clock(), side="right") - 1])


class TraceCounter(Meter):
    """An energy counter that, like NVML, updates only every 100 ms: busy 5 W from 1.5 s, else 2 W."""

    name, kind, period_s = "trace-counter", "energy", 0.1

    def __init__(self, clock):
        self.clock = clock

    def read(self):
        t = np.floor(self.clock() / self.period_s) * self.period_s  # the last update
        return 2.0 * t + 3.0 * max(t - 1.5, 0.0)


@pytest.mark.parametrize("kind", ["power", "counter"])
def test_energy_windows_subtract_idle_power(kind):
    clock = Clock()
    meter = (TracePower(clock, [0.0, 1.5], [2.0, 5.0]) if kind == "power" else TraceCounter(clock))
    sleep = clock.advance
    # idle until 1.5 s (the idle measurement lasts 1 s), then each run takes 10 ms at 5 W: 30 mJ above idle
    clock.t = 0.4
    result = measure_energy(lambda: clock.advance(0.010), meter, window_s=1.0, idle_s=1.0, clock=clock,
                            sleep=lambda s: sleep(s) if clock.t + s <= 1.5 else sleep(max(1.5 - clock.t, 1e-3)))
    assert result.idle_w == pytest.approx(2.0, rel=0.02)
    assert result.mj == pytest.approx(30.0, rel=0.05) and result.windows >= 3 and result.settled
    assert result.window_s >= 3 * meter.period_s and result.inferences >= 3 * 100


def test_no_readable_sensor_here_says_what_was_looked_for():
    with pytest.raises(NoSensor) as caught:
        find_meter()
    message = str(caught.value)
    for looked in ("NVML", "hwmon", "ina3221x", "tegrastats", "RAPL"):
        assert looked in message
    assert "\n" not in message
    with pytest.raises(NoSensor, match="unknown sensor"):
        find_meter({"sensor": "multimeter"})


def test_targets_check_energy_refuses_in_one_line_without_a_sensor(capsys):
    from ofahw.cli.main import main

    try:
        find_meter().close()
        pytest.skip("this machine has a readable power sensor")
    except NoSensor:
        pass
    assert main(["targets", "check", "--target", "cpu", "--energy"]) == 2
    err = capsys.readouterr().err
    assert "no readable power sensor; looked for" in err and len(err.strip().splitlines()) == 1


class CpuTimeMeter(Meter):
    """A stand-in sensor for tests only: an energy counter that rises 10 J per second of this
    process's CPU time (this machine has no power sensor). Never offered to users."""

    name, kind, period_s = "stand-in (10 W of CPU time)", "energy", 0.001

    def read(self):
        import time

        return 10.0 * time.process_time()


@pytest.fixture(scope="module")
def energy_lut(tmp_path_factory):
    from conftest import RESOLUTION, SPACE, fast_cpu_target

    from ofahw.lut.campaign import Campaign
    from ofahw.space import get_space

    out = tmp_path_factory.mktemp("energy") / "cpu.csv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("ofahw.measure.target.find_meter", lambda settings=None: CpuTimeMeter())
        Campaign(get_space(SPACE), fast_cpu_target(), out, [RESOLUTION], samples=6, progress=False, log=lambda m: None,
                 energy={"window_s": 0.02, "idle_s": 0.02}).run()
    return out


def test_energy_columns_predictor_and_search_objective(energy_lut, tmp_path, capsys):
    import json

    from conftest import RESOLUTION, SPACE

    from ofahw.cli.main import main
    from ofahw.lut import LatencyTable
    from ofahw.space import get_space

    table = LatencyTable.read(energy_lut)
    assert table.has_energy and all(r["energy_mj"] > 0 for r in table.rows)
    assert table.energy["sensor"] == {"window_s": 0.02, "idle_s": 0.02} and "idle power subtracted" in table.energy["unit"]
    assert table.energy_predictor["labels"] and table.meta["energy_report"]["chosen"]
    assert main(["search", "--lut", str(energy_lut), "--objective", "energy", "--objective", "flops", "--space", "ofa-mbv3-w1.0",
                 "--accuracy", str(fitted_accuracy_file(tmp_path)), "--pop-size", "8", "--generations", "2",
                 "--constraint", "energy<=1000", "--out", str(tmp_path / "run"), "--no-progress", "--json"]) == 0
    objectives = json.loads(capsys.readouterr().out)["objectives"]
    assert [o["name"] for o in objectives] == ["top1", "latency_ms@cpu", "energy_mj@cpu", "flops_m"]
    assert "energy per inference" in objectives[2]["source"]
    config = json.dumps(get_space(SPACE).sample(1, np.random.default_rng(4), [RESOLUTION])[0])
    assert main(["predict", "--lut", str(energy_lut), "--config", config]) == 0
    assert "mJ per inference on target cpu" in capsys.readouterr().out


def test_energy_objective_needs_a_lut_with_energy(profiled_lut, tmp_path, capsys):
    from ofahw.cli.main import main

    assert main(["search", "--lut", str(profiled_lut), "--objective", "energy", "--accuracy", str(fitted_accuracy_file(tmp_path)),
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "none of the LUTs has energy columns" in capsys.readouterr().err
