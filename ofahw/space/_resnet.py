"""OFA-ResNet50: elastic depth (per stage and stem), expand ratio per block, width per stage."""

from __future__ import annotations

from ofahw.space._base import Gene, Space
from ofahw.space._mobile import _out_size, _shape
from ofahw.space._ofa import ofa_modules
from ofahw.space._parts import Part

BASE_DEPTH = (2, 2, 4, 2)
D = (0, 1, 2)
E = (0.2, 0.25, 0.35)
W = (0, 1, 2)  # indices into width multipliers (0.65, 0.8, 1.0)


class ResNet50Space(Space):
    name = "ofa-resnet50"
    description = "OFA ResNet50 supernet ofa_resnet50_d0-1-2_e0.2-0.25-0.35_w0.65-0.8-1.0"
    zoo_id = "ofa_resnet50"

    def __init__(self, resolutions: tuple[int, ...]):
        self.resolutions = resolutions

    def _arch_genes(self) -> list[Gene]:
        n_blocks = sum(b + max(D) for b in BASE_DEPTH)
        return (
            [Gene("d", 0, (min(D), max(D)))]  # the stem's middle conv is either kept or skipped
            + [Gene("d", i + 1, D) for i in range(len(BASE_DEPTH))]
            + [Gene("e", i, E) for i in range(n_blocks)]
            + [Gene("w", i, W) for i in range(len(BASE_DEPTH) + 2)]
        )

    def _normalise(self, config: dict) -> dict:
        # OFA skips the stem's middle conv whenever d[0] is below the maximum depth.
        if config["d"][0] in D and config["d"][0] != max(D):
            config["d"][0] = min(D)
        return config

    def _inactive(self, config: dict) -> set[tuple[str, int]]:
        out, start = set(), 0
        for stage, base in enumerate(BASE_DEPTH):
            out |= {("e", start + j) for j in range(base + config["d"][stage + 1], base + max(D))}
            start += base + max(D)
        return out

    def _make_supernet(self):
        return ofa_modules().networks.OFAResNets(
            dropout_rate=0, depth_list=list(D), expand_ratio_list=list(E), width_mult_list=[0.65, 0.8, 1.0]
        )

    def _covering_configs(self, resolution: int) -> list[dict]:
        # A block depends on its own and its predecessor's width; w[i] = (a*i + b) mod 3 gives
        # every (w[i], w[i+1]) pair over a, b.
        n_e = len(self._arch_genes()) - 1 - len(BASE_DEPTH) - len(BASE_DEPTH) - 2
        return [
            {"d": [d0] + [max(D)] * 4, "e": [e] * n_e, "w": [(a * i + b) % 3 for i in range(6)], "r": resolution}
            for d0 in (min(D), max(D))
            for e in E
            for a in range(3)
            for b in range(3)
        ]

    def _parts_of(self, net_config: dict, resolution: int) -> list[Part]:
        stem = net_config["input_stem"]
        size = _out_size(_out_size(resolution, 2), 2)  # stride-2 conv, then stride-2 max pool
        c_out = stem[-1]["out_channels"]
        key = (
            f"InputStem-input:{_shape(resolution, resolution, 3)}-output:{_shape(size, size, c_out)}"
            f"-mid:{stem[0]['out_channels']}-skip:{int(len(stem) == 2)}"
        )
        parts = [Part.of(key, [{"layer": layer} for layer in stem] + [{"op": "max_pool"}], (3, resolution, resolution))]
        for block in net_config["blocks"]:
            out = _out_size(size, block["stride"])
            downsample = int(block["stride"] != 1 or block["in_channels"] != block["out_channels"])
            key = (
                f"bottleneck-input:{_shape(size, size, block['in_channels'])}"
                f"-output:{_shape(out, out, block['out_channels'])}-mid:{block['mid_channels']}"
                f"-kernel:{block['kernel_size']}-stride:{block['stride']}-downsample:{downsample}"
            )
            parts.append(Part.of(key, [{"layer": block}], (block["in_channels"], size, size)))
            size = out
        cls = net_config["classifier"]
        parts.append(
            Part.of(f"Logits-input:{_shape(size, size, cls['in_features'])}-output:{cls['out_features']}",
                    [{"op": "global_avg_pool", "keep_dim": False}, {"layer": cls}], (cls["in_features"], size, size))
        )
        return parts
