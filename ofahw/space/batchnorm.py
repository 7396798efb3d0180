"""BatchNorm recalibration of a subnet cut from a supernet (OFA requires it before use)."""

from __future__ import annotations


def recalibrate_batchnorm(net, calibration, resolution: int, batch_size: int, device: str = "cpu") -> None:
    """Re-estimate every BatchNorm's running mean and variance on ``calibration`` images (an
    ``ofahw.images.ImageFolder``; a cumulative average over all of them): a subnet cut from a
    supernet inherits statistics of the full net. Only the running statistics change."""
    import torch

    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    with torch.no_grad():
        for images, _ in calibration.batches(resolution, batch_size):
            net(torch.from_numpy(images).to(device))
    net.eval()
