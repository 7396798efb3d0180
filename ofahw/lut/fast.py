"""A fast profile without a source LUT: measure the probe blocks (the smallest and the largest block
of each probe group, :mod:`ofahw.lut.probes`) and predict every other block from them; whole
networks are measured as in a full profile and stay the ground truth the LUT's predictor is fitted
and judged on.

The block-cost model is per probe group (a block's type, channels, kernel, stride, SE and
activation): log latency linear in log size (FLOPs plus input elements, which carry the input size
and the expand ratio) between the group's two measured ends. On this machine's six full profiles
(every block measured), it predicted the blocks it left out with a mean error of
3.9-6.7%, from 70 measured blocks, where a ridge regression over the same features fitted on a
fifth of the blocks (96, spread over each stage's FLOPs) erred by 4.9-9.8%; a third point per group
or a least-squares line through three or four did about as well, from more blocks."""

from __future__ import annotations

from ofahw.lut.campaign import Campaign, Item
from ofahw.lut.probes import interpolate_in_groups, probe_blocks, probe_size
from ofahw.space import part_cost


def fast_networks(batch: int) -> int:
    """Whole networks a fast profile measures unless told: 30 at batch 1, 15 at larger batches.

    A network's rounds cost more against a block's the larger the batch: on this machine's four
    batch-8 full profiles (onnxruntime and OpenVINO, fp32 and int8) 30 networks with the 70 probe
    blocks came to 29-33% of a full profile's device time, 15 to 17.5-22%; at batch 1, 30 came to
    19-22%. Fitted on the full profiles' own probe blocks and 15 of their networks (nothing measured
    anew), the fast predictor placed their 50 held-out subnets within ±5% 88-94%, ±10% 98-100%, Kendall
    tau 0.935-0.953; with 30, 74-100%, 98-100%, 0.915-0.979 (OpenVINO int8 lost most at 15: ±5% 100 ->
    90%, tau 0.979 -> 0.935; onnxruntime fp32 gained: 74 -> 92%)."""
    return 30 if batch == 1 else 15


BLOCK_MODEL = ("per probe group (type, channels, kernel, stride, SE, activation): log latency interpolated in log size "
               "(FLOPs + input elements) between the group's smallest and largest block, both measured")


class FastCampaign(Campaign):
    """A campaign that measures the probe blocks and ``samples`` networks, and predicts the other
    blocks from the probes (:data:`BLOCK_MODEL`)."""

    def plan(self) -> list[Item]:
        probes = probe_blocks(self.space, self.resolutions)
        items = super().plan()
        self._all_blocks = [i for i in items if i.kind == "block"]
        return [i for i in items if i.kind == "network" or i.key in probes]

    def _complete_rows(self, rows: list[dict]) -> list[dict]:
        measured = [r for r in rows if r["kind"] == "block"]  # a campaign completes measured rows only
        have = {r["key"] for r in measured}
        missing = [i for i in self._all_blocks if i.key not in have]
        sizes = {i.key: probe_size(i.part) for i in self._all_blocks}
        predicted = interpolate_in_groups(sizes, ((r["key"], r["value_ms"]) for r in measured))
        derived = []
        for item in missing:
            flops, params = (float(c) / 1e6 for c in part_cost(item.part))
            derived.append(self._derived_block(item.key, item.resolution, flops, params, predicted[item.key],
                                               f"predicted: its probe group's smallest and largest block, measured on "
                                               f"target {self.target.name}, interpolated at its size (log-log)"))
        return rows + derived

    def _extra_meta(self, rows: list[dict]) -> dict:
        measured = [r for r in rows if r["kind"] == "block" and r["rounds"]]
        networks = [r for r in rows if r["kind"] == "network"]
        return {"fast": {"measured_blocks": len(measured), "predicted_blocks": len(self._all_blocks) - len(measured),
                         "block_model": BLOCK_MODEL, "measured_networks": len(networks),
                         "device_s": {"timed": sum(r["timed_s"] or 0 for r in measured + networks),
                                      "wall": sum(r["wall_s"] or 0 for r in measured + networks)}}}
