"""Profiling several targets (and batch sizes) at once: each into its LUT, fully or by transfer
from existing LUTs; remote targets concurrently, those on this machine one after another."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ofahw._io import refuse_overwriting
from ofahw.errors import UserError
from ofahw.lut.campaign import Campaign, ProfileResult
from ofahw.lut.fast import FastCampaign, fast_networks
from ofahw.lut.identity import batch_path
from ofahw.lut.table import lut_files
from ofahw.lut.transfer import TransferCampaign
from ofahw.measure import Target
from ofahw.space import Space

FULL_NETWORKS = 100  # whole networks a full profile measures unless told
TRANSFER_NETWORKS = 30  # the most a transfer measures unless told


def profile_targets(space: Space, targets: list[Target], out: str | Path | None = None, resolutions=None,
                    samples: int | None = None, seed: int = 0, budget_s: float | None = None, fresh: bool = False,
                    progress: bool = True, log: Callable[[str], None] = print, batches: list[int] = (1,),
                    calibration: str | None = None, sources: list[str] = (), until: float | None = None,
                    fast: bool = False, energy: bool = False, probe: bool = True) -> list[tuple[Target, ProfileResult | Exception]]:
    """Profile ``space`` on each of ``targets`` at each batch size into ``out`` (one target) or
    ``lut/TARGET.csv``, the LUT of batch B > 1 beside it as ``STEM-bB.csv`` (with one batch size and
    ``out``, ``out`` itself). ``calibration``: an image folder for int8 targets' quantization.
    ``samples``: whole networks measured (default: 100; a transfer's 30; a fast profile's
    :func:`ofahw.lut.fast.fast_networks` at each batch size).
    ``sources``: LUTs to transfer from (:class:`ofahw.lut.transfer.TransferCampaign`; ``samples`` then
    bounds the networks measured, ``until`` a cross-validated MAPE that stops it earlier, ``probe`` whether
    probe blocks are measured too). ``fast``: the
    probe blocks measured, the rest interpolated between them (:class:`ofahw.lut.fast.FastCampaign`).
    ``energy``: energy per inference too, for every target (else for those whose file says so).
    Returns each (target, batch)'s target with its result or the error that stopped it (the others go on)."""
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise UserError(f"--target names the same target twice: {names}")
    unplaced = [t.name for t in targets if t.placement]
    if unplaced:
        raise UserError(f"target {unplaced[0]} is measured on the Ray node its file's ray section names: pass --ray [ADDRESS], "
                        "or remove the section to measure it here")
    if len(targets) > 1 and out:
        raise UserError("--out names one LUT; with several targets each LUT goes to lut/TARGET.csv")
    batches = list(batches)
    if not batches or any(not isinstance(b, int) or b < 1 for b in batches) or len(set(batches)) != len(batches):
        raise UserError(f"--batch must list distinct positive integers, got {batches}")
    if calibration is not None and not Path(calibration).is_dir():
        raise UserError(f"calibration folder {calibration} does not exist")
    if calibration is not None and not any(t.quantization() for t in targets):
        raise UserError("--calib calibrates int8 models, and no target here has precision int8")

    def lut_path(target: Target, batch: int) -> Path:
        if out and len(batches) == 1:
            return Path(out)
        return batch_path(out or f"lut/{target.name}.csv", batch)

    if out:
        inputs = [t.source for t in targets if t.source.endswith((".yaml", ".yml"))]
        refuse_overwriting([f for b in batches for f in lut_files(lut_path(targets[0], b))], inputs)
    if until is not None and not sources:
        raise UserError("--until stops a transfer (--from) once its error is reached")
    if not probe and not sources:
        raise UserError("--no-probe is for a transfer (--from): a profile without a source measures every block")
    if fast and sources:
        raise UserError("--fast profiles without a source; --from transfers from one: choose either")
    for target in targets:
        target.calibration = calibration

    def campaign(i: int, target: Target, batch: int) -> Campaign:
        sensor = target.energy if target.energy is not None else ({} if energy else None)
        if sensor is not None and (sources or fast):
            raise UserError(f"target {target.name}: energy is measured item by item; it does not combine with --from or --fast "
                            "(their blocks are derived, not measured)")
        common = {"seed": seed, "budget_s": budget_s, "fresh": fresh, "progress": progress, "log": log, "position": i, "batch": batch,
                  "energy": sensor}
        path = lut_path(target, batch)
        if samples is not None:
            n = samples
        else:
            n = TRANSFER_NETWORKS if sources else fast_networks(batch) if fast else FULL_NETWORKS
        if sources:
            refuse_overwriting(lut_files(path), sources)
            return TransferCampaign(space, target, path, sources, n, resolutions, until=until, probe=probe, **common)
        return (FastCampaign if fast else Campaign)(space, target, path, resolutions, n, **common)

    campaigns = [campaign(i, t, b) for i, t in enumerate(targets) for b in batches]
    return [(c.target, outcome) for c, outcome in zip(campaigns, run_campaigns(campaigns), strict=True)]


def run_campaigns(campaigns: list[Campaign]) -> list:
    """Run campaigns, each remote target's (SSH, or placed on a Ray node) concurrently with the
    others'; those on this machine one after another, since measuring two local targets at once would
    perturb both, and a target's own campaigns (several batch sizes) one after another. Where some run
    concurrently, every campaign's models are made first (:meth:`Campaign.make_ahead`). Returns each
    result or its exception."""
    from concurrent.futures import ThreadPoolExecutor

    groups: dict[int, list[Campaign]] = {}
    for c in campaigns:
        groups.setdefault(0 if c.target.on_this_machine else id(c.target), []).append(c)
    outcomes: dict[int, object] = {}

    def run_group(group):
        for campaign in group:
            if id(campaign) not in outcomes:  # its models could not be made
                outcomes[id(campaign)] = outcome(campaign.run)

    def outcome(step):
        try:
            return step()
        except Exception as exc:  # reported per target; the others go on
            return exc

    if len(campaigns) == 1:
        return [campaigns[0].run()]
    if len(groups) > 1:
        # every model made before any campaign measures: exporting on every core beside a measurement would perturb it
        for c in campaigns:
            failed = outcome(c.make_ahead)
            if failed is not None:
                outcomes[id(c)] = failed
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        list(pool.map(run_group, groups.values()))
    return [outcomes[id(c)] for c in campaigns]
