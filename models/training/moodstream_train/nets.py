"""The emotion network: a VGG-style CNN described by a compact spec string.

``"32|64,64|128,128|256,256"`` means: stage 1 one 3x3 conv of 32 channels, then 2x2 max-pool;
stage 2 two convs of 64, pool; ... ; then global average pooling, dropout and a linear layer.
Every conv is conv(bias=False) -> BatchNorm -> ReLU. The same spec builds the Keras mirror
used for TFLite export (``export.py``), so only these layer types may appear here.
"""

from __future__ import annotations

import torch
from torch import nn


def parse_spec(spec: str) -> list[list[int]]:
    stages = [[int(w) for w in stage.split(",")] for stage in spec.split("|")]
    if not stages or any(not s for s in stages):
        raise ValueError(f"bad network spec {spec!r}")
    return stages


class EmotionNet(nn.Module):
    """Input (N,1,48,48) float in [0,1]; output logits (N, num_classes)."""

    def __init__(self, spec: str, num_classes: int = 6, dropout: float = 0.3) -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        channels = 1
        for stage in parse_spec(spec):
            for width in stage:
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean(dim=(2, 3))
        return self.classifier(self.dropout(x))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(spec: str, size: int = 48) -> int:
    """Multiply-accumulates of one forward pass (convs and the linear layer)."""
    macs, channels = 0, 1
    for stage in parse_spec(spec):
        for width in stage:
            macs += size * size * channels * width * 9
            channels = width
        size //= 2
    return macs + channels * 6
