"""Was the device quiet while a LUT was measured? Two signs that it was not, each with its limit:

- *unsteady*: an item's rounds, spread over the campaign, disagree (slow spells of seconds);
- *contended*: within each round, whole networks' slow runs lie far above their fast ones
  (another process shares the core: the scheduler preempts runs, while the fastest, untouched
  runs — the LUT's low percentile — barely move). Measured here with a busy loop pinned to the
  same core at nice 5: networks' p90/p10 went from 1.06 to 1.9, their p10 by under 2%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ofahw.lut.table import LatencyTable

# A quiet device repeats one block within a few percent from round to round (this 2-core VM ~2%, an
# H100 ~1%); a median spread above this means something else was using the device while it was profiled.
UNSTEADY_SPREAD = 0.10
# A quiet device's whole networks show p90/p10 - 1 of about 0.06 here; a core shared with a busy
# process about 0.9. Blocks are too short to be preempted often, so networks are the ones judged.
CONTENDED_TAIL = 0.25


def network_tails(rows: list[dict]) -> list[float]:
    """p90 / p10 - 1 of each whole-network row that records both."""
    return [r["p90_ms"] / r["p10_ms"] - 1.0 for r in rows
            if r["kind"] == "network" and r.get("p90_ms") and r.get("p10_ms")]


def median_or_none(values) -> float | None:
    return float(np.median(values)) if len(values) else None


@dataclass(frozen=True)
class Steadiness:
    """How quiet the device was while ``table`` was measured."""

    block_round_spread: float | None  # median over blocks of the spread between their rounds
    network_tail: float | None  # median over networks of p90 / p10 - 1 within the kept round

    @classmethod
    def of(cls, table: LatencyTable) -> Steadiness:
        return cls(median_or_none(table.round_spreads("block")), median_or_none(network_tails(table.rows)))

    @property
    def unsteady(self) -> bool:
        return self.block_round_spread is not None and self.block_round_spread > UNSTEADY_SPREAD

    @property
    def contended(self) -> bool:
        return self.network_tail is not None and self.network_tail > CONTENDED_TAIL

    def warnings(self) -> list[str]:
        out = []
        if self.unsteady:
            out.append(f"the device was unsteady while it was profiled: a block's rounds differ by "
                       f"{self.block_round_spread:.0%} (median over blocks, fastest to slowest; a quiet device repeats "
                       f"within a few percent). The LUT keeps each item's fastest round, but profile again with "
                       f"--fresh when the device is quiet")
        if self.contended:
            out.append(f"the device was shared while it was profiled: whole networks' p90 lay {self.network_tail:.0%} "
                       f"above their p10 (median over networks; above {CONTENDED_TAIL:.0%} another process takes the "
                       f"core, a quiet one shows a few percent). The LUT's low percentiles are little affected, but a "
                       f"model deployed beside that load runs slower than they say; profile again with --fresh when "
                       f"the device is not shared")
        return out

    def to_dict(self) -> dict:
        return {"median_block_round_spread": self.block_round_spread, "median_network_tail": self.network_tail,
                "unsteady": self.unsteady, "contended": self.contended}
