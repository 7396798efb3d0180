"""Mobile inverted-bottleneck spaces: OFA-MobileNetV3 (w1.0, w1.2) and OFA-ProxylessNAS (w1.3)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

from ofahw.space._base import Gene, Space
from ofahw.space._ofa import ofa_modules
from ofahw.space._parts import Part

KS, E, D = (3, 5, 7), (3, 4, 6), (2, 3, 4)


def _shape(*dims) -> str:
    return "x".join(str(d) for d in dims)


def _out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


class _MobileSpace(Space):
    n_stages = 5  # stages with elastic depth, max(D) blocks each
    n_blocks: int  # elastic blocks (genes per ks / e list)
    n_head_parts: int  # parts after the last elastic block

    @cached_property
    def _part_grids(self) -> dict[int, tuple]:
        """Resolution -> :meth:`part_grid`; a with_resolutions() clone made after it shares it (same parts)."""
        return {}

    def part_grid(self, resolution: int) -> tuple[tuple[Part, ...], tuple]:
        """(parts every subnet has, grid) at ``resolution``: ``grid[i][k][e]`` is elastic block i
        with the k-th kernel and e-th expand choice. A block's part depends on nothing else (its
        input width is fixed by its stage), so a subnet's parts are the fixed ones plus one grid
        entry per active block: what :meth:`parts` assembles and the searches sum over whole
        populations at once. Worked out once per resolution from OFA's net configs."""
        grids = self._part_grids
        if resolution not in grids:
            grid = [[[None] * len(E) for _ in KS] for _ in range(self.n_blocks)]
            fixed: list[Part] = []
            for config in self._covering_configs(resolution):
                parts = super().parts(config)
                first = len(parts) - self.n_head_parts - self.n_blocks
                fixed = parts[:first] + parts[len(parts) - self.n_head_parts:]
                k, e = KS.index(config["ks"][0]), E.index(config["e"][0])
                for i in range(self.n_blocks):
                    grid[i][k][e] = parts[first + i]
            grids[resolution] = tuple(fixed), tuple(tuple(tuple(row) for row in block) for block in grid)
        return grids[resolution]

    def parts(self, config: Mapping) -> list[Part]:
        """The subnet's parts as OFA's net config gives them (:meth:`Space.parts`), assembled from
        :meth:`part_grid`: microseconds instead of milliseconds a subnet."""
        config = self.canonical(config)
        fixed, grid = self.part_grid(config["r"])
        inactive = self._inactive(config)
        blocks = [grid[i][KS.index(k)][E.index(e)] for i, (k, e) in enumerate(zip(config["ks"], config["e"], strict=True))
                  if ("ks", i) not in inactive]
        head = len(fixed) - self.n_head_parts
        return [*fixed[:head], *blocks, *fixed[head:]]

    def _arch_genes(self) -> list[Gene]:
        return (
            [Gene("ks", i, KS) for i in range(self.n_blocks)]
            + [Gene("e", i, E) for i in range(self.n_blocks)]
            + [Gene("d", i, D) for i in range(self.n_stages)]
        )

    def _inactive(self, config: dict) -> set[tuple[str, int]]:
        out = set()
        for stage, depth in enumerate(config["d"]):
            for j in range(depth, max(D)):
                i = stage * max(D) + j
                out |= {("ks", i), ("e", i)}
        return out

    def _covering_configs(self, resolution: int) -> list[dict]:
        # A block's input width depends only on its stage, so uniform ks/e at full depth covers all.
        return [
            {"ks": [k] * self.n_blocks, "e": [e] * self.n_blocks, "d": [max(D)] * self.n_stages, "r": resolution}
            for k in KS
            for e in E
        ]

    def _block_part(self, block: dict, size: int, expand_field: str) -> tuple[Part, int]:
        conv = block.get("conv") or block["mobile_inverted_conv"]
        out = _out_size(size, conv["stride"])
        mid = conv.get("mid_channels") or round(conv["in_channels"] * conv["expand_ratio"])
        fields = [
            "expanded_conv",
            f"input:{_shape(size, size, conv['in_channels'])}",
            f"output:{_shape(out, out, conv['out_channels'])}",
            f"expand:{mid if expand_field == 'mid' else conv['expand_ratio']:d}",
            f"kernel:{conv['kernel_size']}",
            f"stride:{conv['stride']}",
            f"idskip:{0 if block['shortcut'] is None else 1}",
        ]
        if expand_field == "mid":
            fields += [f"se:{int(bool(conv['use_se']))}", f"hs:{int(conv['act_func'] == 'h_swish')}"]
        return Part.of("-".join(fields), [{"layer": block}], (conv["in_channels"], size, size)), out

    def _stem_part(self, first_conv: dict, r: int) -> tuple[Part, int]:
        size = _out_size(r, first_conv["stride"])
        key = f"Conv-input:{_shape(r, r, 3)}-output:{_shape(size, size, first_conv['out_channels'])}"
        return Part.of(key, [{"layer": first_conv}], (3, r, r)), size


class MobileNetV3Space(_MobileSpace):
    """OFA-MobileNetV3: 20 elastic blocks (kernel 3/5/7, expand 3/4/6), depth 2-4 in 5 stages."""

    n_blocks = 20
    n_head_parts = 4

    def __init__(self, width_mult: float, resolutions: tuple[int, ...]):
        self.width_mult = width_mult
        self.name = f"ofa-mbv3-w{width_mult}"
        self.description = f"OFA MobileNetV3 supernet ofa_mbv3_d234_e346_k357_w{width_mult}"
        self.resolutions = resolutions
        self.zoo_id = f"ofa_mbv3_d234_e346_k357_w{width_mult}"

    def _make_supernet(self):
        return ofa_modules().networks.OFAMobileNetV3(
            dropout_rate=0, width_mult=self.width_mult, ks_list=list(KS), expand_ratio_list=list(E), depth_list=list(D)
        )

    def _parts_of(self, net_config: dict, resolution: int) -> list[Part]:
        stem, size = self._stem_part(net_config["first_conv"], resolution)
        parts = [stem]
        for block in net_config["blocks"]:
            part, size = self._block_part(block, size, expand_field="mid")
            parts.append(part)
        expand, mix, cls = net_config["final_expand_layer"], net_config["feature_mix_layer"], net_config["classifier"]
        c1, c2 = expand["out_channels"], mix["out_channels"]
        parts += [
            Part.of(f"Conv_1-input:{_shape(size, size, expand['in_channels'])}-output:{_shape(size, size, c1)}",
                    [{"layer": expand}], (expand["in_channels"], size, size)),
            Part.of(f"AvgPool2D-input:{_shape(size, size, c1)}-output:{_shape(1, 1, c1)}",
                    [{"op": "global_avg_pool", "keep_dim": True}], (c1, size, size)),
            Part.of(f"Conv_2-input:{_shape(1, 1, c1)}-output:{_shape(1, 1, c2)}", [{"layer": mix}], (c1, 1, 1)),
            Part.of(f"Logits-input:{_shape(1, 1, c2)}-output:{cls['out_features']}",
                    [{"op": "flatten"}, {"layer": cls}], (c2, 1, 1)),
        ]
        return parts


class ProxylessSpace(_MobileSpace):
    """OFA-ProxylessNAS (w1.3): 20 elastic blocks in 5 stages plus one fixed-depth last block."""

    n_blocks = 21
    n_head_parts = 2
    name = "ofa-proxyless"
    description = "OFA ProxylessNAS supernet ofa_proxyless_d234_e346_k357_w1.3"
    zoo_id = "ofa_proxyless_d234_e346_k357_w1.3"

    def __init__(self, resolutions: tuple[int, ...]):
        self.resolutions = resolutions

    def _make_supernet(self):
        return ofa_modules().networks.OFAProxylessNASNets(
            dropout_rate=0, width_mult=1.3, ks_list=list(KS), expand_ratio_list=list(E), depth_list=list(D)
        )

    def _parts_of(self, net_config: dict, resolution: int) -> list[Part]:
        stem, size = self._stem_part(net_config["first_conv"], resolution)
        parts = [stem]
        for block in net_config["blocks"]:
            part, size = self._block_part(block, size, expand_field="ratio")
            parts.append(part)
        mix, cls = net_config["feature_mix_layer"], net_config["classifier"]
        c = mix["out_channels"]
        parts += [
            Part.of(f"Conv_1-input:{_shape(size, size, mix['in_channels'])}-output:{_shape(size, size, c)}",
                    [{"layer": mix}], (mix["in_channels"], size, size)),
            Part.of(f"Logits-input:{_shape(size, size, c)}-output:{cls['out_features']}",
                    [{"op": "global_avg_pool", "keep_dim": False}, {"layer": cls}], (c, size, size)),
        ]
        return parts
