"""The SSH target against a real OpenSSH server on 127.0.0.1, the runner on the far side."""

import base64
import hashlib
import json
import subprocess
import sys
import uuid
from dataclasses import replace

import numpy as np
import pytest
from conftest import FAST, RESOLUTION, SPACE, write_yaml

from ofahw.errors import TargetError
from ofahw.export import OnnxCache, network_artifact
from ofahw.lut import LatencyTable
from ofahw.lut.campaign import Campaign, journal_path
from ofahw.measure import load_target
from ofahw.measure.check import check_target
from ofahw.measure.ssh import SshTarget
from ofahw.space import get_space
from ofahw.testing import loopback_sshd as sshd

pytestmark = pytest.mark.skipif(sshd.available() is not None, reason=str(sshd.available()))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = sshd.start(tmp_path_factory.mktemp("sshd"))
    yield srv
    srv.process.terminate()
    srv.process.wait(timeout=10)


def ssh_target(server, tmp_path, name="board", **ssh):
    accept = ssh.pop("_accept", False)
    path = write_yaml(tmp_path / "targets" / f"{name}.yaml",
                      server.target_yaml(workdir=str(tmp_path / "remote"), python=sys.executable, **ssh))
    target = load_target(str(path), accept_host_key=accept)
    target.protocol = FAST
    return target


def profile(target, out, samples=5):
    return Campaign(get_space(SPACE), target, out, [RESOLUTION], samples=samples, progress=False, log=lambda m: None).run()


def test_profile_over_ssh_gives_a_lut_like_a_local_one(server, tmp_path, profiled_lut):
    target = ssh_target(server, tmp_path)
    result = profile(target, tmp_path / "board.csv")
    local = LatencyTable.read(profiled_lut)
    assert set(result.table.blocks) == set(local.blocks)
    assert result.table.rows[0].keys() == local.rows[0].keys()
    device = result.table.meta["device"]
    assert device["transport"] == "ssh" and device["runtime"] == "onnxruntime" and device["host"] == "127.0.0.1"
    assert "temperatures_c" in device and result.table.meta["target"]["fingerprint"]["kind"] == "ssh"
    # models went up content-addressed: one file per distinct model, no partial uploads left
    models = list((tmp_path / "remote" / "models").iterdir())
    assert models and not [m for m in models if ".part-" in m.name]


class Dropping(SshTarget):
    """Kills the connection, or the remote runner, after some results."""

    def __init__(self, *args, kill_after=(), how="connection", **kwargs):
        super().__init__(*args, **kwargs)
        self.kill_after, self.how, self.results = set(kill_after), how, 0

    def measure_batch(self, jobs):
        for m in super().measure_batch(jobs):
            self.results += 1
            if self.results in self.kill_after:
                if self.how == "connection":
                    self._client.get_transport().close()
                else:
                    subprocess.run(["pkill", "-f", "ofahw_runner_"], check=False)
            yield m


def _dropping(server, tmp_path, **kwargs):
    base = ssh_target(server, tmp_path)
    return Dropping(base.name, base.options, FAST, ssh=base.ssh, **kwargs)


@pytest.mark.parametrize("how", ["connection", "runner"])
def test_faults_mid_profile_are_retried_without_loss_or_duplicates(server, tmp_path, how):
    target = _dropping(server, tmp_path, kill_after=(7, 40), how=how)
    result = profile(target, tmp_path / "board.csv")
    n_items = len(get_space(SPACE).catalogue([RESOLUTION])) + 5
    keys = [(r["kind"], r["key"]) for r in result.table.rows]
    assert len(keys) == len(set(keys)) == n_items
    assert all(r["rounds"] == FAST.rounds for r in result.table.rows)


def test_connection_lost_for_good_then_rerun_resumes(server, tmp_path):
    out = tmp_path / "board.csv"
    target = _dropping(server, tmp_path, kill_after=(30,), how="connection")
    target.ssh["retries"] = 0
    with pytest.raises(TargetError, match="lost the device.*rerun to resume"):
        profile(target, out)
    records = [json.loads(line) for line in journal_path(out).read_text().splitlines()[1:]]
    # results already on their way when the connection died are kept; rounds that will be retried count as measured, not done
    assert 0 < len(records) <= target.results
    done = sum(not r["retried"] for r in records)
    again = Counting.of(ssh_target(server, tmp_path))
    result = profile(again, out)
    n_items = len(get_space(SPACE).catalogue([RESOLUTION])) + 5
    assert again.calls == n_items * FAST.rounds - done
    assert len({(r["kind"], r["key"]) for r in result.table.rows}) == n_items


class Counting(SshTarget):
    @classmethod
    def of(cls, base):
        target = cls(base.name, base.options, FAST, ssh=base.ssh)
        target.calls = 0
        return target

    def measure_batch(self, jobs):
        for m in super().measure_batch(jobs):
            self.calls += 1
            yield replace(m, settled=True)  # retries of noisy rounds must not change the count


def test_unknown_host_key_is_refused_unless_pinned_or_accepted(server, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(TargetError, match="not in .*host_key_fingerprint.*--accept-host-key"):
        check_target(ssh_target(server, tmp_path, known_hosts=str(empty)))
    host_pub = server.host_pub.split()[1]
    pinned = "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(host_pub)).digest()).decode().rstrip("=")
    result = check_target(ssh_target(server, tmp_path, known_hosts=str(empty), host_key_fingerprint=pinned))
    assert "pinned fingerprint" in result["metadata"]["host_key"]
    wrong = "SHA256:" + "A" * 43
    with pytest.raises(TargetError, match="does not match the pinned"):
        check_target(ssh_target(server, tmp_path, known_hosts=str(empty), host_key_fingerprint=wrong))
    accepted = check_target(ssh_target(server, tmp_path, known_hosts=str(empty), _accept=True))
    assert "accepted explicitly" in accepted["metadata"]["host_key"]
    assert host_pub in empty.read_text()  # saved: the next connection knows it


def test_changed_host_key_is_refused(server, tmp_path):
    other = sshd.keygen(tmp_path / "other_host_key")
    bad = tmp_path / "known_hosts"
    bad.write_text(f"[127.0.0.1]:{server.port} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n")
    with pytest.raises(TargetError, match="CHANGED"):
        check_target(ssh_target(server, tmp_path, known_hosts=str(bad)))


def test_wrong_user_key_is_a_clear_error(server, tmp_path):
    stranger = sshd.keygen(tmp_path / "stranger")
    with pytest.raises(TargetError, match="authentication to .* failed with key"):
        check_target(ssh_target(server, tmp_path, key=str(stranger)))


def test_remote_python_without_onnxruntime(server, tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = ssh_target(server, tmp_path)
    target.ssh["python"] = str(venv / "bin" / "python")
    with pytest.raises(TargetError, match="pip install numpy onnxruntime"):
        check_target(target)


def test_hostile_names_and_paths_cannot_run_commands(server, tmp_path):
    canary = tmp_path / f"pwned-{uuid.uuid4().hex}"
    hostile_dir = str(tmp_path / f"remote; touch {canary}")
    target = ssh_target(server, tmp_path)
    target.ssh["workdir"] = hostile_dir
    check_target(target)
    assert not canary.exists()
    assert (tmp_path / f"remote; touch {canary}" / "models").is_dir()  # the name was taken literally
    target = ssh_target(server, tmp_path)
    target.ssh["python"] = f"python3$(touch {canary})"
    with pytest.raises(TargetError, match="did not start"):
        check_target(target)
    assert not canary.exists()


@pytest.mark.parametrize("ssh, message", [
    ({}, "needs ssh.host"),
    ({"host": "h", "password": "x"}, "unknown ssh settings"),
    ({"host": "-oProxyCommand=x"}, "must not start with '-'"),
    ({"host": "h", "workdir": "a\nb"}, "single-line"),
    ({"host": "h", "before": "sudo x"}, "list of shell commands"),
    ({"host": "h", "host_key_fingerprint": "abc"}, "must look like SHA256"),
])
def test_bad_ssh_settings(ssh, message):
    with pytest.raises(TargetError, match=message):
        SshTarget("t", None, FAST, ssh=ssh)


def test_cli_profiles_a_board_and_the_local_cpu_at_once(server, tmp_path, monkeypatch, capsys):
    import json

    import yaml

    from ofahw.cli.main import main

    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    board = yaml.safe_load(server.target_yaml(workdir=str(tmp_path / "remote"), python=sys.executable, known_hosts=str(empty)))
    write_yaml(tmp_path / "targets" / "board.yaml", yaml.safe_dump({**board, "protocol": FAST.to_dict()}))
    write_yaml(tmp_path / "targets" / "cpu.yaml", yaml.safe_dump({"kind": "cpu", "protocol": FAST.to_dict()}))
    argv = ["profile", "--target", "cpu", "--target", "board", "--space", SPACE, "--resolutions", str(RESOLUTION),
            "--samples", "5", "--json"]
    assert main(argv) == 2  # the board's host key is unknown: refused
    assert "not in" in capsys.readouterr().out
    assert main([*argv, "--accept-host-key"]) == 0
    results = {r["target"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert set(results) == {"cpu", "board"}
    assert "accepted explicitly" in results["board"]["device"]["host_key"]
    assert LatencyTable.read(tmp_path / "lut" / "board.csv").blocks.keys() == LatencyTable.read(tmp_path / "lut" / "cpu.csv").blocks.keys()


class CountingUploads(SshTarget):
    def _put(self, data, local, remote):
        try:
            self._sftp.stat(remote)
        except OSError:
            self.uploads.append(remote)
        return super()._put(data, local, remote)


def test_ssh_config_alias_commands_and_no_second_upload(server, tmp_path, monkeypatch):
    home = tmp_path / "home"
    write_yaml(home / ".ssh" / "config", f"Host boardalias\n  HostName 127.0.0.1\n  Port {server.port}\n  User {server.user}\n"
                                        f"  IdentityFile {server.user_key}\n")
    monkeypatch.setenv("HOME", str(home))
    ssh = {"host": "boardalias", "known_hosts": str(server.known_hosts), "python": sys.executable,
           "workdir": str(tmp_path / "remote"), "before": [f"touch {tmp_path}/before-ran"], "after": [f"touch {tmp_path}/after-ran"]}
    uploads = []
    for _ in range(2):
        target = CountingUploads("board", {"runtime": "onnxruntime"}, FAST, ssh=dict(ssh))
        target.uploads = uploads
        result = check_target(target)
        assert result["metadata"]["host"] == "127.0.0.1" and result["probe"]["n"] > 0
    assert (tmp_path / "before-ran").exists() and (tmp_path / "after-ran").exists()
    assert len([u for u in uploads if "/models/" in u]) == 1  # the probe model went up once, not twice


def test_openvino_runtime_over_ssh_measures_fp32_and_int8(server, tmp_path):
    space = get_space(SPACE)
    config = space.sample(1, np.random.default_rng(0), [RESOLUTION])[0]
    for precision in ("fp32", "int8"):
        target = ssh_target(server, tmp_path, name=f"board-ov-{precision}")
        target.options.update(runtime="openvino", precision=precision)
        with target:
            meta = target.metadata()
            m = target.measure(network_artifact(space, config, OnnxCache()), FAST.for_network())
        assert meta["runtime"] == "openvino" and meta["runtime_version"] and "openvino_capabilities" in meta
        assert meta["precision"] == precision and m.p10 > 0 and m.n >= FAST.min_repeats


def test_remote_python_without_openvino(server, tmp_path):
    shadow = tmp_path / "shadow" / "openvino"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'openvino'\", name='openvino')\n")
    python = tmp_path / "python-without-openvino"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={shadow.parent} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    target = ssh_target(server, tmp_path)
    target.options["runtime"] = "openvino"
    target.ssh["python"] = str(python)
    with pytest.raises(TargetError, match="openvino is not usable on this device.*pip install numpy openvino") as caught:
        check_target(target)
    assert "\n" not in str(caught.value)


def test_export_builds_the_engine_on_the_device_and_fetches_it(server, tmp_path):
    """The transport of an SSH engine build, with a stand-in trtexec that writes a marker file as its
    'engine' (no TensorRT here): the ONNX goes up, trtexec runs there, the file comes back."""
    import json

    import torch
    import yaml

    from ofahw.deploy import deploy

    trtexec = tmp_path / "fake-trtexec"
    trtexec.write_text("#!/bin/sh\necho 'stand-in trtexec for tests'\nfor a in \"$@\"; do case \"$a\" in --saveEngine=*) "
                       "printf 'engine of %s' \"$*\" > \"${a#--saveEngine=}\";; esac; done\n")
    trtexec.chmod(0o755)
    board = yaml.safe_load(server.target_yaml(workdir=str(tmp_path / "remote"), python=sys.executable, trtexec=str(trtexec)))
    path = write_yaml(tmp_path / "targets" / "jetson.yaml", yaml.safe_dump({**board, "runtime": {"runtime": "trtexec"}}))
    weights = tmp_path / "supernet.pth"
    torch.save({"state_dict": get_space(SPACE)._make_supernet().state_dict()}, weights)
    config = get_space(SPACE).sample(1, np.random.default_rng(0), [RESOLUTION])[0]
    out = tmp_path / "models" / "m"
    model = deploy(SPACE, out, config=config, weights=str(weights), formats=["onnx", "tensorrt"], target=str(path),
                   log=lambda m: None)
    engine = out / model["files"]["tensorrt"]["file"]
    assert engine.read_text().startswith("engine of --onnx=") and "--fp16" in engine.read_text()
    assert model["files"]["tensorrt"]["built_on"].startswith("target jetson (127.0.0.1)")
    assert json.loads((out / "model.json").read_text())["files"]["tensorrt"]["precision"] == "fp16"


def test_energy_over_ssh_reads_the_devices_sensor(server, tmp_path):
    """The runner reads the device's rails (an INA3221 hwmon tree in a folder here, its readings
    constant, so idle and busy power agree and the energy above idle is about zero)."""
    rails = tmp_path / "hwmon" / "hwmon1"
    rails.mkdir(parents=True)
    for name, value in (("in1_label", "VDD_IN"), ("in1_input", "5000"), ("curr1_input", "800")):
        (rails / name).write_text(value + "\n")
    space = get_space(SPACE)
    config = space.sample(1, np.random.default_rng(0), [RESOLUTION])[0]
    sensor = {"sensor": "hwmon", "rails": ["VDD_IN"], "root": str(tmp_path / "hwmon"), "window_s": 0.05, "idle_s": 0.05}
    target = ssh_target(server, tmp_path)
    with target:
        assert target.check_energy(sensor)["sensor"] == "hwmon"
        m = target.measure_energy(network_artifact(space, config, OnnxCache()), sensor)
        with pytest.raises(TargetError, match="no readable power sensor"):
            target.check_energy({"sensor": "auto"})
    assert m.sensor == "hwmon" and m.windows >= 3 and m.idle_w == pytest.approx(4.0) and abs(m.mj) < 1e-6


def test_a_job_longer_than_the_silence_limit_lives_on_heartbeats(server, tmp_path):
    """trtexec builds its engine inside the job's first round (minutes for a network on a Jetson):
    a stand-in trtexec that takes 2 s to build, against a client that calls the device lost after
    1 s of silence, measures because the runner's heartbeats keep arriving; an engine build with
    the heartbeat slower than the silence limit is what used to lose the device."""
    trtexec = tmp_path / "slow-trtexec"
    times = json.dumps([{"computeMs": 1.0 + 0.01 * (i % 3)} for i in range(60)])
    trtexec.write_text("#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in\n"
                       "  --saveEngine=*) sleep 2; echo engine > \"${a#--saveEngine=}\";;\n"
                       f"  --exportTimes=*) echo '{times}' > \"${{a#--exportTimes=}}\";;\nesac; done\n")
    trtexec.chmod(0o755)
    space = get_space(SPACE)
    artifact = network_artifact(space, space.sample(1, np.random.default_rng(0), [RESOLUTION])[0], OnnxCache())
    for heartbeat_s, lives in ((0.2, True), (5.0, False)):
        target = ssh_target(server, tmp_path / str(heartbeat_s), trtexec=str(trtexec))
        target.options["runtime"] = "trtexec"
        target.heartbeat_s, target.silence_s, target.ssh["retries"] = heartbeat_s, 1.0, 0
        with target:
            if lives:
                assert target.measure(artifact, FAST.for_network()).p10 == pytest.approx(1.0)
            else:
                with pytest.raises(TargetError, match="lost the device"):
                    target.measure(artifact, FAST.for_network())


def test_a_failed_engine_build_leaves_no_partial_engine(tmp_path):
    from ofahw.measure.runner import TrtexecRuntime

    trtexec = tmp_path / "failing-trtexec"
    trtexec.write_text("#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --saveEngine=*) echo half > \"${a#--saveEngine=}\"; "
                       "echo 'builder ran out of memory'; exit 1;; esac; done\n")
    trtexec.chmod(0o755)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(RuntimeError, match="could not build an engine: builder ran out of memory"):
        TrtexecRuntime({"trtexec": str(trtexec)})._engine(str(model))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failing-trtexec", "m.onnx"]
