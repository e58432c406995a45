"""The compositional GAN generator (`compositional_gan`).

Follows "Compositional GAN: Learning Image-Conditional Binary Composition" (Azadi, Pathak,
Ebrahimi, Darrell; arXiv:1807.07560, IJCV 2020): given one image of each of two objects
(a chair and a table, say), a relative spatial transformer network places them with
respect to each other, a composition generator paints the joint scene, and a decomposition
generator maps the scene back to the two objects' segmentation masks (the paper's
self-consistency cycle).

* faithful: the relative spatial transformer sees both objects at once (their channels
  concatenated), encodes them with strided convolutions, and regresses one 2x3 affine
  matrix per object (initialised near the identity), applied with `F.affine_grid` +
  bilinear `F.grid_sample`; the composition generator is a pix2pix U-Net (4x4 stride-2
  convs with LeakyReLU(0.2) and BatchNorm down, ReLU + 4x4 stride-2 transposed convs with
  BatchNorm up, skip concatenation, tanh output) on the two transformed objects; the
  decomposition generator is a second encoder-decoder (InstanceNorm, as in the CycleGAN
  generators the paper builds on) ending in a 2-channel sigmoid: one mask per object.
* scaled down: `bench` is 128x128 (the paper's resolution) with 32 base filters and a
  5-level U-Nets (down to 4x4) instead of pix2pix's 64 filters and 7 levels (8.5M
  parameters); `tiny` is 16x16 with 8 base filters and 3 levels.
* different: no discriminators, appearance flow or inpainting network (training-time or
  the paper's unpaired variant); BatchNorm statistics are seeded random values so
  eval-mode BN is not an identity; no dropout in the U-Net decoder.

Eager latency at `bench` (batch 2, 2 threads, PyTorch 2.13 CPU, median): ~23 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from survey_bench.zoo.layers_diffusion import (
    batch_dynamic_shapes,
    randomize_norm_stats,
    seeded_inputs,
)
from survey_bench.zoo.registry import zoo_model


@dataclass(frozen=True)
class CompGANConfig:
    """Shape of the compositional generator."""

    image_size: int
    ngf: int  # base filter count of both encoder-decoders
    levels: int  # stride-2 stages of the U-Net (image_size / 2**levels is the bottleneck)
    stn_width: int
    batch: int = 2


CONFIGS: dict[str, CompGANConfig] = {
    "tiny": CompGANConfig(image_size=16, ngf=8, levels=3, stn_width=8),
    "bench": CompGANConfig(image_size=128, ngf=32, levels=5, stn_width=32),
}


def _width(ngf: int, level: int) -> int:
    return ngf * min(2 ** level, 8)


class RelativeSTN(nn.Module):
    """Predict one affine transform per object from both objects, then warp each."""

    def __init__(self, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = 6
        for i in range(3):
            layers += [nn.Conv2d(ch, width * 2 ** i, 4, stride=2, padding=1), nn.ReLU()]
            ch = width * 2 ** i
        self.features = nn.Sequential(*layers)
        self.theta = nn.Linear(ch, 12)
        with torch.no_grad():  # start near the identity placement, as STNs are initialised
            self.theta.weight.mul_(0.1)
            self.theta.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0] * 2))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`a, b: f32[B, 3, H, W]` -> both objects warped into their relative places."""
        feats = self.features(torch.cat([a, b], dim=1)).mean(dim=(2, 3))
        theta = self.theta(feats).reshape(-1, 2, 2, 3)
        grid_a = F.affine_grid(theta[:, 0], list(a.shape), align_corners=False)
        grid_b = F.affine_grid(theta[:, 1], list(b.shape), align_corners=False)
        warped_a = F.grid_sample(a, grid_a, mode="bilinear", padding_mode="zeros",
                                 align_corners=False)
        warped_b = F.grid_sample(b, grid_b, mode="bilinear", padding_mode="zeros",
                                 align_corners=False)
        return warped_a, warped_b


class UNetGenerator(nn.Module):
    """pix2pix-style U-Net: 4x4 stride-2 convs down, transposed convs up, skip concat."""

    def __init__(self, in_ch: int, out_ch: int, ngf: int, levels: int,
                 norm: type[nn.Module]) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        ch = in_ch
        for i in range(levels):
            w = _width(ngf, i)
            layers: list[nn.Module] = [nn.Conv2d(ch, w, 4, stride=2, padding=1)]
            if i > 0:  # pix2pix leaves the outermost layer unnormalised
                layers.append(norm(w))
            self.down.append(nn.Sequential(*layers))
            ch = w
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            w = _width(ngf, i - 1) if i > 0 else out_ch
            in_up = ch if i == levels - 1 else 2 * ch
            layers = [nn.ConvTranspose2d(in_up, w, 4, stride=2, padding=1)]
            if i > 0:
                layers.append(norm(w))
            self.up.append(nn.Sequential(*layers))
            ch = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`f32[B, in_ch, H, W]` -> pre-activation `f32[B, out_ch, H, W]`."""
        skips = []
        h = x
        for i, layer in enumerate(self.down):
            h = layer(h if i == 0 else F.leaky_relu(h, 0.2))
            skips.append(h)
        skips.pop()  # the bottleneck feeds the first up layer directly
        for i, layer in enumerate(self.up):
            if i > 0:
                h = torch.cat([h, skips.pop()], dim=1)
            h = layer(F.relu(h))
        return h


class InstanceNorm(nn.InstanceNorm2d):
    """InstanceNorm2d with learned affine parameters (CycleGAN's generator norm)."""

    def __init__(self, ch: int) -> None:
        super().__init__(ch, affine=True)


class CompositionalGAN(nn.Module):
    """Place two objects, compose the scene, and decompose it into two object masks."""

    def __init__(self, cfg: CompGANConfig) -> None:
        super().__init__()
        self.stn = RelativeSTN(cfg.stn_width)
        self.compose = UNetGenerator(6, 3, cfg.ngf, cfg.levels, nn.BatchNorm2d)
        self.decompose = UNetGenerator(3, 2, cfg.ngf, cfg.levels, InstanceNorm)

    def forward(self, obj_a: torch.Tensor,
                obj_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`obj_a, obj_b: f32[B, 3, H, W]` -> (composite `f32[B, 3, H, W]` in [-1, 1],
        masks `f32[B, 2, H, W]` in [0, 1])."""
        warped_a, warped_b = self.stn(obj_a, obj_b)
        composite = torch.tanh(self.compose(torch.cat([warped_a, warped_b], dim=1)))
        masks = torch.sigmoid(self.decompose(composite))
        return composite, masks


@zoo_model("compositional_gan", paper="Azadi et al. 2020, Compositional GAN: Learning "
           "Image-Conditional Binary Composition (arXiv:1807.07560, IJCV)",
           task="conditional GAN generator (spatial transformer + U-Nets)",
           dynamic_shapes=batch_dynamic_shapes(("obj_a", "obj_b")),
           input_names=("obj_a", "obj_b"),
           notes="Returns (composite, masks); uses affine_grid + grid_sample.")
def compositional_gan(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Build the compositional generator at `size` ("tiny" or "bench"), seeded."""
    cfg = CONFIGS[size]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CompositionalGAN(cfg)
    randomize_norm_stats(model, torch.Generator().manual_seed(3))
    model.eval()
    shape = (cfg.batch, 3, cfg.image_size, cfg.image_size)
    obj_a, obj_b = seeded_inputs(1, shape, shape)
    return model, (torch.tanh(obj_a), torch.tanh(obj_b))  # images live in [-1, 1]
