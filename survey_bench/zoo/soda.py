"""SODA, a bottleneck diffusion model for representation learning (`soda`).

Follows "SODA: Bottleneck Diffusion Models for Representation Learning" (Hudson, Zoran,
Malinowski, Lampinen, Jaegle, McClelland, Matthey, Hill, Lerchner; 2023): a ResNet encoder
distils a source view into a compact latent `z`, and a denoising UNet decoder generates a
related target view from noise, steered by `z` through feature-wise modulation.

* faithful: ResNet-18 encoder (7x7 stride-2 stem, BatchNorm, ReLU, 3x3 max-pool, four
  stages of two basic blocks, global average pool, Linear to `z`); DDPM-style UNet decoder
  (GroupNorm/SiLU residual blocks, sinusoidal time embedding + MLP, self-attention in the
  middle block at the lowest resolution, skip concatenation) in which every residual
  block's second GroupNorm is modulated per channel by `z` (AdaGN:
  `GN(h) * (1 + scale) + shift`); SODA's *layer modulation*: `z` is split into sections
  and each section drives the blocks of one resolution level (down and up path of the
  same level share a section; the middle blocks have their own).
* scaled down: `bench` is 64x64 RGB with a full-width ResNet-18 (64..512 channels), a
  256-d latent (4 sections of 64) and a decoder with channels (64, 128, 256) and one
  residual block per level (21.7M parameters: 11.3M encoder, 10.4M decoder). `tiny` is
  16x16 with encoder widths (8, 16) and decoder channels (8, 16).
* different: no camera/pose conditioning of the encoder (SODA's novel-view-synthesis
  setting feeds view geometry; for its classification experiments the views are
  augmentations, which is what this stands for); no layer masking (a training-time
  regulariser); BatchNorm statistics are seeded random values so eval-mode BN is not an
  identity.

Eager latency at `bench` (batch 2, 2 threads, PyTorch 2.13 CPU, median): ~100 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from survey_bench.zoo.layers_diffusion import (
    AttnBlock,
    Downsample,
    ResBlock,
    TimestepMLP,
    Upsample,
    batch_dynamic_shapes,
    randomize_norm_stats,
    seeded_inputs,
    seeded_timesteps,
)
from survey_bench.zoo.registry import zoo_model


@dataclass(frozen=True)
class SODAConfig:
    """Shape of a SODA encoder-decoder pair."""

    image_size: int
    enc_widths: tuple[int, ...]  # one ResNet stage per width, two basic blocks each
    section_dim: int  # latent = section_dim * (len(dec_channels) + 1)
    dec_channels: tuple[int, ...]
    dec_res_blocks: int
    groups: int
    batch: int = 2


CONFIGS: dict[str, SODAConfig] = {
    "tiny": SODAConfig(image_size=16, enc_widths=(8, 16), section_dim=8, dec_channels=(8, 16),
                       dec_res_blocks=1, groups=4),
    "bench": SODAConfig(image_size=64, enc_widths=(64, 128, 256, 512), section_dim=64,
                        dec_channels=(64, 128, 256), dec_res_blocks=1, groups=32),
}


class BasicBlock(nn.Module):
    """ResNet basic block: (conv3x3-BN-ReLU-conv3x3-BN) + shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`f32[B, in, H, W]` -> `f32[B, out, H/stride, W/stride]`."""
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """ResNet-18-style encoder: image -> latent `z: f32[B, latent_dim]`."""

    def __init__(self, widths: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        blocks: list[nn.Module] = []
        ch = widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(ch, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            ch = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(ch, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`f32[B, 3, H, W]` -> `f32[B, latent_dim]`."""
        h = self.blocks(self.stem(x))
        return self.fc(h.mean(dim=(2, 3)))


class ModulatedUNet(nn.Module):
    """DDPM-style UNet whose residual blocks are FiLM-modulated by sections of `z`."""

    def __init__(self, cfg: SODAConfig) -> None:
        super().__init__()
        g, k, chans = cfg.groups, cfg.section_dim, cfg.dec_channels
        self.section_dim = k
        temb = 4 * chans[0]
        self.time = TimestepMLP(chans[0], temb)
        self.conv_in = nn.Conv2d(3, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, ch = [chans[0]], chans[0]
        for i, out_ch in enumerate(chans):
            blocks = []
            for _ in range(cfg.dec_res_blocks):
                blocks.append(ResBlock(ch, out_ch, temb, g, cond_dim=k))
                ch = out_ch
                skips.append(ch)
            self.down.append(nn.ModuleList(blocks))
            last = i == len(chans) - 1
            self.downsample.append(nn.Identity() if last else Downsample(ch))
            if not last:
                skips.append(ch)
        self.mid1 = ResBlock(ch, ch, temb, g, cond_dim=k)
        self.mid_attn = AttnBlock(ch, g)
        self.mid2 = ResBlock(ch, ch, temb, g, cond_dim=k)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, out_ch in reversed(list(enumerate(chans))):
            blocks = []
            for _ in range(cfg.dec_res_blocks + 1):
                blocks.append(ResBlock(ch + skips.pop(), out_ch, temb, g, cond_dim=k))
                ch = out_ch
            self.up.append(nn.ModuleList(blocks))
            self.upsample.append(Upsample(ch) if i > 0 else nn.Identity())
        self.norm_out = nn.GroupNorm(g, ch)
        self.conv_out = nn.Conv2d(ch, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """`x: f32[B, 3, H, W]`, `t: f32[B]`, `z: f32[B, latent]` -> eps `f32[B, 3, H, W]`."""
        k, n_levels = self.section_dim, len(self.down)
        sections = [z[:, i * k:(i + 1) * k] for i in range(n_levels + 1)]  # last: the middle
        temb = self.time(t)
        h = self.conv_in(x)
        hs = [h]
        for i, (blocks, down) in enumerate(zip(self.down, self.downsample)):
            for block in blocks:
                h = block(h, temb, sections[i])
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.mid1(h, temb, sections[-1])
        h = self.mid2(self.mid_attn(h), temb, sections[-1])
        for j, (blocks, up) in enumerate(zip(self.up, self.upsample)):
            level = n_levels - 1 - j
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), temb, sections[level])
            h = up(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class SODA(nn.Module):
    """Encode the source view, then predict the noise in the noisy target view."""

    def __init__(self, cfg: SODAConfig) -> None:
        super().__init__()
        latent = cfg.section_dim * (len(cfg.dec_channels) + 1)
        self.encoder = ResNetEncoder(cfg.enc_widths, latent)
        self.decoder = ModulatedUNet(cfg)

    def forward(self, source: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """`source, x_t: f32[B, 3, H, W]`, `t: f32[B]` -> predicted noise `f32[B, 3, H, W]`."""
        return self.decoder(x_t, t, self.encoder(source))


@zoo_model("soda", paper="Hudson et al. 2023, SODA: Bottleneck Diffusion Models for "
           "Representation Learning (arXiv:2311.17901)",
           task="conditional diffusion denoiser (encoder + FiLM-modulated UNet)",
           dynamic_shapes=batch_dynamic_shapes(("source", "x_t", "t")),
           input_names=("source", "x_t", "t"),
           notes="t is f32[B]; the encoder's BatchNorm runs in eval mode.")
def soda(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Build SODA at `size` ("tiny" or "bench") with seeded weights and inputs."""
    cfg = CONFIGS[size]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SODA(cfg)
    randomize_norm_stats(model, torch.Generator().manual_seed(3))
    model.eval()
    shape = (cfg.batch, 3, cfg.image_size, cfg.image_size)
    source, x_t = seeded_inputs(1, shape, shape)
    return model, (source, x_t, seeded_timesteps(2, cfg.batch))
