"""Affective image content analysis: a multi-level CNN emotion classifier.

Follows the multi-level deep representation idea of Rao, Li & Xu ("Learning Multi-level
Deep Representations for Image Emotion Classification", Neural Processing Letters 2020),
with the label-distribution output of Yang et al. ("Joint Image Emotion Classification and
Distribution Learning via Deep Convolutional Neural Network", IJCAI 2017): a ResNet-18
backbone (He et al. 2016: 7x7 stem, max pool, four stages of two BasicBlocks with batch
norm and 1x1 projection shortcuts), features global-average-pooled from each of the four
stages and concatenated (64 + 128 + 256 + 512 = 960 channels at bench size), and two heads:
logits over the 8 Mikels emotion categories (amusement, anger, awe, contentment, disgust,
excitement, fear, sadness) and a predicted emotion distribution (softmax of a second head).

Faithful: ResNet-18 exactly at bench size (224 x 224 input), pooling at several levels, the
two outputs. Simplified: Rao et al. pool region features from multiple scales of the image
(and their MldrNet uses other backbones); here one image, one pooling per stage; weights and
batch-norm statistics are seeded random numbers. Tiny: 32 x 32 input, widths divided by 16.

Eager latency at bench size (1 image): 35 ms single-thread CPU time per inference, 19 ms
wall with torch.set_num_threads(2) (medians of 11, host quiet enough for two threads).
"""

from __future__ import annotations

import torch
from torch import nn

from survey_bench.zoo.registry import zoo_model

PAPER = ("Rao, Li & Xu 2020, Learning Multi-level Deep Representations for Image Emotion "
         "Classification; Yang et al. 2017 (emotion distribution)")
EMOTIONS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear",
            "sadness")
SIZES = {"tiny": (32, (4, 8, 16, 32)), "bench": (224, (64, 128, 256, 512))}


class BasicBlock(nn.Module):
    """ResNet BasicBlock: two 3x3 conv+BN, ReLU, shortcut (1x1 conv+BN when shapes change)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class MultiLevelEmotionNet(nn.Module):
    """ResNet-18 with pooled features from all four stages; emotion logits and distribution."""

    def __init__(self, widths: tuple[int, ...], classes: int = len(EMOTIONS)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, 2, 3, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        stages = []
        channels = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(channels, width, stride),
                                        BasicBlock(width, width, 1)))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(sum(widths), classes)
        self.distribution = nn.Linear(sum(widths), classes)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(emotion logits [B, 8], emotion distribution [B, 8] summing to 1)."""
        x = self.stem(image)
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(self.pool(x).flatten(1))
        features = torch.cat(levels, dim=1)
        return self.classifier(features), torch.softmax(self.distribution(features), dim=-1)


def _randomize_batchnorm(model: nn.Module) -> None:
    """Seeded non-trivial affine parameters and running statistics for every batch norm."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.0)
            nn.init.uniform_(module.bias, -0.1, 0.1)
            nn.init.uniform_(module.running_mean, -0.1, 0.1)
            nn.init.uniform_(module.running_var, 0.5, 2.0)


@zoo_model("aica_cnn", paper=PAPER, task="image emotion classification (8 Mikels classes)",
           input_names=("image",))
def aica_cnn(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Multi-level ResNet-18 emotion classifier with a distribution head."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} for aica_cnn; sizes: {', '.join(SIZES)}")
    resolution, widths = SIZES[size]
    torch.manual_seed(0)
    model = MultiLevelEmotionNet(widths)
    _randomize_batchnorm(model)
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(1, 3, resolution, resolution, generator=generator)
    return model.eval(), (image,)
