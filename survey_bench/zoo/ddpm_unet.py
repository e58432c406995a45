"""The DDPM noise-prediction UNet (`ddpm_unet`).

Follows the denoiser that "Understanding Diffusion Models: A Unified Perspective" (Luo 2022)
describes for the VDM's epsilon-prediction objective, which is the network of "Denoising
Diffusion Probabilistic Models" (Ho, Jain, Abbeel 2020; itself a PixelCNN++ / Wide-ResNet
UNet):

* faithful: residual blocks of GroupNorm -> SiLU -> 3x3 conv, with the timestep's sinusoidal
  embedding passed through a two-layer MLP and added (after SiLU and a per-block Linear) in
  every block; `num_res_blocks` blocks per resolution; single-head self-attention (1x1 q/k/v
  projections, `F.scaled_dot_product_attention`) at the listed low resolutions and in the
  middle (res, attn, res); stride-2 conv downsampling, nearest-neighbour x2 + conv
  upsampling; every down-path activation concatenated into the up path (which has one extra
  block per level); GN -> SiLU -> conv output head predicting epsilon.
* scaled down: `bench` is a 64x64 RGB model with channels (64, 128, 256), two res blocks
  per level and attention at 16x16 (15.7M parameters; DDPM's CIFAR10 model has channels
  128 x (1, 2, 2, 2) at 32x32, 35.7M). `tiny` is 8x8 with channels (8, 16).
* different: no dropout (inference only); the output conv is not zero-initialised (DDPM
  does, which would make a randomly initialised model ignore its input); timesteps are
  float32 `t: f32[B]` (integer values in [0, 1000)) rather than int64, so the graph has a
  single dtype.

Eager latency at `bench` (batch 2, 2 threads, PyTorch 2.13 CPU, median): ~150 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from survey_bench.zoo.layers_diffusion import (
    AttnBlock,
    Downsample,
    ResBlock,
    TimestepMLP,
    Upsample,
    batch_dynamic_shapes,
    seeded_inputs,
    seeded_timesteps,
)
from survey_bench.zoo.registry import zoo_model


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a DDPM UNet: one entry of `channels` per resolution level."""

    image_size: int
    channels: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    groups: int
    in_channels: int = 3
    batch: int = 2


CONFIGS: dict[str, UNetConfig] = {
    "tiny": UNetConfig(image_size=8, channels=(8, 16), num_res_blocks=1,
                       attn_resolutions=(4,), groups=4),
    "bench": UNetConfig(image_size=64, channels=(64, 128, 256), num_res_blocks=2,
                        attn_resolutions=(16,), groups=32),
}


def input_shape(size: str) -> tuple[int, ...]:
    """The `x` shape of the `size` example (used by `sampling.ddpm_sample`)."""
    cfg = CONFIGS[size]
    return (cfg.batch, cfg.in_channels, cfg.image_size, cfg.image_size)


class Level(nn.Module):
    """The blocks of one resolution level (down or up path), attention optional."""

    def __init__(self, blocks: list[ResBlock], attn: list[nn.Module],
                 resample: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attn)
        self.resample = resample


class DDPMUNet(nn.Module):
    """Predict the noise epsilon in `x_t` at timestep `t`."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        ch0 = cfg.channels[0]
        temb = 4 * ch0
        self.time = TimestepMLP(ch0, temb)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch0, 3, padding=1)

        def attn_or_id(ch: int, res: int) -> nn.Module:
            return AttnBlock(ch, cfg.groups) if res in cfg.attn_resolutions else nn.Identity()

        skips = [ch0]  # channels of every activation the down path hands to the up path
        down: list[Level] = []
        ch, res = ch0, cfg.image_size
        for i, out_ch in enumerate(cfg.channels):
            blocks, attn = [], []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(ch, out_ch, temb, cfg.groups))
                attn.append(attn_or_id(out_ch, res))
                ch = out_ch
                skips.append(ch)
            last = i == len(cfg.channels) - 1
            down.append(Level(blocks, attn, nn.Identity() if last else Downsample(ch)))
            if not last:
                skips.append(ch)
                res //= 2
        self.down = nn.ModuleList(down)

        self.mid1 = ResBlock(ch, ch, temb, cfg.groups)
        self.mid_attn = AttnBlock(ch, cfg.groups)
        self.mid2 = ResBlock(ch, ch, temb, cfg.groups)

        up: list[Level] = []
        for i, out_ch in reversed(list(enumerate(cfg.channels))):
            blocks, attn = [], []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(ch + skips.pop(), out_ch, temb, cfg.groups))
                attn.append(attn_or_id(out_ch, res))
                ch = out_ch
            up.append(Level(blocks, attn, Upsample(ch) if i > 0 else nn.Identity()))
            if i > 0:
                res *= 2
        self.up = nn.ModuleList(up)

        self.norm_out = nn.GroupNorm(cfg.groups, ch)
        self.conv_out = nn.Conv2d(ch, cfg.in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """`x: f32[B, 3, H, W]`, `t: f32[B]` -> predicted noise `f32[B, 3, H, W]`."""
        temb = self.time(t)
        h = self.conv_in(x)
        hs = [h]
        for level in self.down:
            for block, attn in zip(level.blocks, level.attn):
                h = attn(block(h, temb))
                hs.append(h)
            if not isinstance(level.resample, nn.Identity):
                h = level.resample(h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for level in self.up:
            for block, attn in zip(level.blocks, level.attn):
                h = attn(block(torch.cat([h, hs.pop()], dim=1), temb))
            h = level.resample(h)
        return self.conv_out(torch.nn.functional.silu(self.norm_out(h)))


@zoo_model("ddpm_unet", paper="Luo 2022, Understanding Diffusion Models: A Unified Perspective "
           "(arXiv:2208.11970); Ho et al. 2020, DDPM (arXiv:2006.11239)",
           task="diffusion denoiser (epsilon prediction)",
           dynamic_shapes=batch_dynamic_shapes(("x", "t")), input_names=("x", "t"),
           notes="t is f32[B] holding integer timesteps in [0, 1000).")
def ddpm_unet(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Build the DDPM UNet at `size` ("tiny" or "bench") with seeded weights and inputs."""
    cfg = CONFIGS[size]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DDPMUNet(cfg).eval()
    (x,) = seeded_inputs(1, input_shape(size))
    t = seeded_timesteps(2, cfg.batch)
    return model, (x, t)
