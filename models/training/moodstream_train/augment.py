"""Batched augmentation on whatever device holds the batch (GPU when there is one)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    max_rotation_deg: float = 15.0,
    scale_range: tuple[float, float] = (0.85, 1.15),
    max_shift: float = 0.1,
    brightness: float = 0.25,
    contrast: float = 0.25,
    erase_prob: float = 0.5,
) -> torch.Tensor:
    """Random flip, rotation, scale, shift, brightness/contrast and erasing of (N,1,H,W) in [0,1]."""
    n, _, h, w = x.shape
    dev = x.device

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=dev) * (hi - lo) + lo

    angle = uniform(-max_rotation_deg, max_rotation_deg, n) * math.pi / 180
    scale = uniform(*scale_range, n)
    flip = torch.where(torch.rand(n, generator=generator, device=dev) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, uniform(-max_shift, max_shift, n) * 2], dim=1),
            torch.stack([sin * flip, cos, uniform(-max_shift, max_shift, n) * 2], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * uniform(1 - contrast, 1 + contrast, n, 1, 1, 1) + mean
    x = x + uniform(-brightness, brightness, n, 1, 1, 1) * 0.5
    x = x.clamp(0.0, 1.0)

    # Random erasing: one rectangle of 2-20% of the area, filled with noise.
    area = uniform(0.02, 0.2, n) * h * w
    aspect = torch.exp(uniform(math.log(0.3), math.log(3.3), n))
    eh = (area * aspect).sqrt().clamp(1, h)
    ew = (area / aspect).sqrt().clamp(1, w)
    top = uniform(0, 1, n) * (h - eh)
    left = uniform(0, 1, n) * (w - ew)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + ew).view(n, 1, 1))
    )
    apply = torch.rand(n, generator=generator, device=dev) < erase_prob
    box = (box & apply.view(n, 1, 1)).unsqueeze(1)
    noise = torch.rand(x.shape, generator=generator, device=dev)
    return torch.where(box, noise, x)
