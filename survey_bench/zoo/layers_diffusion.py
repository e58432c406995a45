"""Blocks shared by the zoo's diffusion and GAN models.

The DDPM UNet (Ho et al. 2020), SODA's decoder and U-ViT all use the same few pieces: a
sinusoidal timestep embedding, GroupNorm + SiLU residual blocks that add a time embedding
(optionally modulated per channel by a conditioning vector, FiLM / AdaGN), single- or
multi-head self-attention over pixels, and stride-2 down / nearest-neighbour up sampling.
Everything here is written so that `torch.export(strict=False)` sees static control flow:
branches depend on constructor arguments only, never on tensor values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps `t: f32[B]` -> `f32[B, dim]`.

    The transformer position encoding used by DDPM: `[cos(t * f_i), sin(t * f_i)]` with
    frequencies `f_i = max_period ** (-i / half)`.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepMLP(nn.Module):
    """The DDPM time embedding: sinusoid -> Linear -> SiLU -> Linear."""

    def __init__(self, base_dim: int, out_dim: int) -> None:
        super().__init__()
        self.base_dim = base_dim
        self.fc1 = nn.Linear(base_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Embed timesteps `f32[B]` into `f32[B, out_dim]`."""
        return self.fc2(F.silu(self.fc1(timestep_embedding(t, self.base_dim))))


class ResBlock(nn.Module):
    """DDPM residual block: GN-SiLU-conv, + time embedding, GN-SiLU-conv, + skip.

    With `cond_dim > 0` the second GroupNorm is modulated per channel by a conditioning
    vector (SODA's AdaGN / FiLM): `GN(h) * (1 + scale(c)) + shift(c)`.
    """

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, groups: int,
                 cond_dim: int = 0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * out_ch) if cond_dim > 0 else None
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """`x: f32[B, in_ch, H, W]`, `temb: f32[B, temb_dim]` -> `f32[B, out_ch, H, W]`."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.norm2(h)
        if self.film is not None:
            assert cond is not None, "a FiLM-modulated ResBlock needs its conditioning vector"
            scale, shift = self.film(cond).chunk(2, dim=1)
            h = h * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None]
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Self-attention over the H*W pixels (DDPM's attention at low resolutions), + residual."""

    def __init__(self, ch: int, groups: int, heads: int = 1) -> None:
        super().__init__()
        assert ch % heads == 0, f"{ch} channels do not split into {heads} heads"
        self.heads = heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`f32[B, C, H, W]` -> `f32[B, C, H, W]`."""
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each [B, heads, HW, C/heads]
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 convolution."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`f32[B, C, H, W]` -> `f32[B, C, H/2, W/2]`."""
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour upsampling, then a 3x3 convolution."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`f32[B, C, H, W]` -> `f32[B, C, 2H, 2W]`."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def randomize_norm_stats(module: nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm non-trivial seeded running statistics and affine parameters.

    Fresh BatchNorms have mean 0 and variance 1, which makes eval-mode BN an identity and
    hides folding bugs in a compiler; trained networks never look like that.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                m.weight.copy_(1.0 + 0.1 * torch.randn(n, generator=generator))
                m.bias.copy_(0.1 * torch.randn(n, generator=generator))


def batch_dynamic_shapes(names: tuple[str, ...]) -> Callable[[], dict[str, dict[int, object]]]:
    """A lazy torch.export spec making dim 0 of every named input the shared batch `N`.

    The zoo's examples use batch 2: torch.export specializes a size-1 dimension, so a
    batch-1 example could not be exported with a symbolic batch.
    """

    def spec() -> dict[str, dict[int, object]]:
        n = torch.export.Dim("N")
        return {name: {0: n} for name in names}

    return spec


def seeded_inputs(seed: int, *shapes: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """Standard-normal tensors of the given shapes from a private generator."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, generator=g) for s in shapes)


def seeded_timesteps(seed: int, batch: int, num_steps: int = 1000) -> torch.Tensor:
    """`f32[batch]` integer-valued timesteps in [0, num_steps), from a private generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_steps, (batch,), generator=g).to(torch.float32)
