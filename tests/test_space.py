import copy
import importlib

import numpy as np
import pytest
import torch

from ofahw.errors import ConfigError, UserError
from ofahw.space import get_space, space_names
from ofahw.space._ofa import ofa_modules

ALL = space_names()


@pytest.mark.parametrize("name", ALL)
def test_encode_decode_round_trip(name):
    space = get_space(name)
    rng = np.random.default_rng(0)
    for config in space.sample(25, rng):
        x = space.encode(config)
        assert x.shape == (space.n_var,)
        assert np.all(space.xl <= x) and np.all(x <= space.xu)
        assert space.decode(x) == config
    for _ in range(25):
        x = rng.integers(space.xl, space.xu + 1)
        assert np.array_equal(space.encode(space.decode(x)), space.encode(space.decode(space.encode(space.decode(x)))))


@pytest.mark.parametrize("name", ALL)
def test_catalogue_holds_every_part_of_random_subnets(name):
    space = get_space(name)
    resolutions = [space.resolutions[0], space.resolutions[-1]]
    catalogue = space.catalogue(resolutions)
    rng = np.random.default_rng(1)
    for config in space.sample(40, rng, resolutions):
        parts = space.parts(config)
        assert all(p.key in catalogue for p in parts)


def _mbv3_config(d=(2, 2, 2, 2, 2), ks=3, e=3, r=128):
    return {"ks": [ks] * 20, "e": [e] * 20, "d": list(d), "r": r}


def test_inactive_entries_do_not_change_the_subnet():
    space = get_space("ofa-mbv3-w1.0")
    a = _mbv3_config()
    b = copy.deepcopy(a)
    b["ks"][3], b["e"][2] = 7, 6  # blocks 2 and 3 of stage 0 are skipped at depth 2
    assert space.canonical(a) == space.canonical(b)
    assert space.config_hash(a) == space.config_hash(b)
    c = copy.deepcopy(a)
    c["ks"][1] = 7  # block 1 is active
    assert space.config_hash(c) != space.config_hash(a)


def test_ofa_resolution_list_and_resnet_stem_depth_are_normalised():
    space = get_space("ofa-mbv3-w1.0")
    assert space.canonical({**_mbv3_config(), "r": [160]})["r"] == 160
    resnet = get_space("ofa-resnet50")
    config = resnet.sample(1, np.random.default_rng(0))[0]
    config["d"][0] = 1  # OFA skips the stem conv for any d[0] below the maximum
    zero = {**config, "d": [0] + config["d"][1:]}
    assert resnet.config_hash(config) == resnet.config_hash(zero)


@pytest.mark.parametrize("bad, message", [
    ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5, "r": 128}, "list of 20"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 129}, "r = 129"),
    ({"ks": [4] + [3] * 19, "e": [3] * 20, "d": [2] * 5, "r": 128}, "ks[0] = 4"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [5] * 5, "r": 128}, "d[0] = 5"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}, "lacks keys ['r']"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128, "w": 1}, "unknown keys ['w']"),
    ({"ks": ["3"] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}, "not a number"),
    ([1, 2, 3], "JSON object"),
    ("{not json", "not valid JSON"),
])
def test_invalid_configs_are_rejected_clearly(bad, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        get_space("ofa-mbv3-w1.0").canonical(bad)


def test_decode_rejects_out_of_bounds_vectors():
    space = get_space("ofa-mbv3-w1.0")
    with pytest.raises(ConfigError):
        space.decode(space.xu + 1)


def test_unknown_space_and_resolution():
    with pytest.raises(UserError, match="unknown space"):
        get_space("ofa-mbv9")
    with pytest.raises(ConfigError, match="not in space"):
        get_space("ofa-mbv3-w1.2").validate_resolutions([128])


def test_flops_match_ofa_own_count():
    ofa_modules()  # registers the torchvision guard before any other ofa module is imported
    MBv3LatencyTable = importlib.import_module("ofa.nas.efficiency_predictor.latency_lookup_table").MBv3LatencyTable

    space = get_space("ofa-mbv3-w1.2")
    for config in space.sample(5, np.random.default_rng(3)):
        ofa_mflops = MBv3LatencyTable.count_flops_given_config(space.net_config(config), config["r"])
        assert space.flops(config) == pytest.approx(ofa_mflops, rel=1e-9)


def test_stratified_sampling_spreads_over_size():
    space = get_space("ofa-mbv3-w1.0")
    rng = np.random.default_rng(0)
    uniform = np.log([space.flops(c) for c in space.sample(30, rng, [160])])
    strat_configs = space.sample_stratified(30, np.random.default_rng(0), [160])
    strat = np.log([space.flops(c) for c in strat_configs])
    assert len({space.config_hash(c) for c in strat_configs}) == 30
    assert strat.max() - strat.min() > 1.3 * (uniform.max() - uniform.min())
    again = space.sample_stratified(30, np.random.default_rng(0), [160])
    assert again == strat_configs  # reproducible from the seed


def test_random_network_runs_and_pretrained_weights_load(tmp_path):
    space = get_space("ofa-mbv3-w1.0")
    config = _mbv3_config(d=(3, 2, 4, 2, 3), ks=5, e=4)
    net = space.build_network(config)
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 128, 128)).shape == (1, 1000)
    supernet = space._make_supernet().eval()
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": supernet.state_dict()}, path)
    loaded = space.build_network(config, weights=path)
    supernet.set_active_subnet(ks=config["ks"], e=config["e"], d=config["d"])
    reference = supernet.get_active_subnet(preserve_weight=True).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(loaded(x), reference(x), atol=1e-5)


def test_bad_weights_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a loadable torch checkpoint"):
        get_space("ofa-mbv3-w1.0").build_network(_mbv3_config(), weights=bad)


def test_net_configs_are_the_same_from_several_threads():
    """Two campaigns (two targets) plan from one shared space object at once: its supernet's active
    subnet must not leak from one thread's config into another's."""
    from concurrent.futures import ThreadPoolExecutor

    space = get_space("ofa-mbv3-w1.0")
    configs = space.sample(60, np.random.default_rng(3), [128])
    expected = [space.net_config(c) for c in configs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(space.net_config, configs)) == expected


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.0", "ofa-mbv3-w1.2", "ofa-proxyless"])
def test_mobile_parts_from_the_grid_are_ofas_net_config_parts(name):
    """The mobile spaces assemble a subnet's parts from their per-resolution grid: the very parts
    (keys, layer configs, input shapes) that OFA's own net config of the subnet gives."""
    space = get_space(name)
    resolutions = [space.resolutions[0], space.resolutions[len(space.resolutions) // 2], space.resolutions[-1]]
    configs = space.sample(24, np.random.default_rng(6), resolutions) + space.sample_stratified(12, np.random.default_rng(7))
    for config in configs:
        assert space.parts(config) == space._parts_of(space.net_config(config), config["r"])


def test_block_parts_lists_each_part_once_at_its_first_resolution():
    space = get_space("ofa-mbv3-w1.0")
    parts = space.block_parts([128, 160])
    at_128, at_160 = space.catalogue([128]), space.catalogue([160])
    assert set(parts) == set(at_128) | set(at_160)
    assert all(r == (128 if key in at_128 else 160) for key, (r, _) in parts.items())
    assert all(part.key == key for key, (_, part) in parts.items())
