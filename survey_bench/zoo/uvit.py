"""EasyGen's BiDiffuser denoiser, a U-ViT (`uvit_bidiffuser`).

EasyGen ("Making Multimodal Generation Easier: When Diffusion Models Meet LLMs", Zhao et al.
2023) fine-tunes UniDiffuser ("One Transformer Fits All Distributions in Multi-Modal
Diffusion at Scale", Bao et al. 2023) into BiDiffuser, a bidirectional image<->text
denoiser. UniDiffuser's network is a U-ViT ("All are Worth Words: A ViT Backbone for
Diffusion Models", Bao et al. 2023) over one joint token sequence.

* faithful: image latent patch tokens from a patchify convolution (kernel = stride =
  patch), text tokens from a Linear on the (reduced) CLIP text embeddings, a time token
  from the sinusoidal embedding + MLP, a learned position embedding over the whole
  sequence; `depth // 2` in-blocks, one mid-block and `depth // 2` out-blocks where each
  out-block first fuses a long skip from its mirror in-block (`Linear(concat(x, skip))`);
  UniDiffuser's post-LayerNorm blocks (LN after the skip fusion, after attention + residual
  and after MLP + residual); multi-head attention with `F.scaled_dot_product_attention`;
  GELU MLP with ratio 4; outputs are the image noise (Linear to patch pixels, unpatchify,
  U-ViT's final 3x3 conv) and the text noise (Linear back to the text dimension).
* scaled down: `bench` is a 4x32x32 latent (patch 2, 256 image tokens) with 77 text tokens
  of width 64 (UniDiffuser's reduced text width), embed dim 256, depth 13, 4 heads
  (11.3M parameters; UniDiffuser uses 64x64 latents, dim 1536, depth 30). `tiny` is a
  4x8x8 latent with 4 text tokens, dim 32, depth 3.
* different: one timestep `t` and one time token shared by both modalities (UniDiffuser
  and BiDiffuser take `t_img` and `t_text`, two tokens); no CLIP image-embedding token;
  no dropout.

Eager latency at `bench` (batch 2, 2 threads, PyTorch 2.13 CPU, median): ~80 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from survey_bench.zoo.layers_diffusion import (
    TimestepMLP,
    batch_dynamic_shapes,
    seeded_inputs,
    seeded_timesteps,
)
from survey_bench.zoo.registry import zoo_model


@dataclass(frozen=True)
class UViTConfig:
    """Shape of a BiDiffuser U-ViT."""

    latent_size: int
    latent_channels: int
    patch: int
    text_tokens: int
    text_dim: int
    dim: int
    depth: int  # odd: depth // 2 in-blocks, a mid-block, depth // 2 out-blocks
    heads: int
    batch: int = 2


CONFIGS: dict[str, UViTConfig] = {
    "tiny": UViTConfig(latent_size=8, latent_channels=4, patch=2, text_tokens=4, text_dim=8,
                       dim=32, depth=3, heads=2),
    "bench": UViTConfig(latent_size=32, latent_channels=4, patch=2, text_tokens=77,
                        text_dim=64, dim=256, depth=13, heads=4),
}


class Attention(nn.Module):
    """Multi-head self-attention over tokens `f32[B, L, D]`."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)  # U-ViT: qkv_bias=False
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`f32[B, L, D]` -> `f32[B, L, D]`."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, heads, L, D/heads]
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class PostLNBlock(nn.Module):
    """UniDiffuser's post-LN transformer block, with an optional long-skip fusion."""

    def __init__(self, dim: int, heads: int, skip: bool) -> None:
        super().__init__()
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """`f32[B, L, D]` (and the mirror block's output for out-blocks) -> `f32[B, L, D]`."""
        if self.skip_linear is not None:
            assert skip is not None, "an out-block needs the long skip of its in-block"
            x = self.norm1(self.skip_linear(torch.cat([x, skip], dim=-1)))
        x = self.norm2(x + self.attn(x))
        return self.norm3(x + self.mlp(x))


class BiDiffuserUViT(nn.Module):
    """Predict the noise of an image latent and a text embedding at timestep `t`."""

    def __init__(self, cfg: UViTConfig) -> None:
        super().__init__()
        assert cfg.depth % 2 == 1, "a U-ViT has an odd depth (in-blocks, mid, out-blocks)"
        self.cfg = cfg
        d = cfg.dim
        grid = cfg.latent_size // cfg.patch
        self.patch_embed = nn.Conv2d(cfg.latent_channels, d, cfg.patch, stride=cfg.patch)
        self.text_embed = nn.Linear(cfg.text_dim, d)
        self.time_embed = TimestepMLP(d, d)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, 1 + cfg.text_tokens + grid * grid, d))
        self.in_blocks = nn.ModuleList(PostLNBlock(d, cfg.heads, skip=False)
                                       for _ in range(cfg.depth // 2))
        self.mid_block = PostLNBlock(d, cfg.heads, skip=False)
        self.out_blocks = nn.ModuleList(PostLNBlock(d, cfg.heads, skip=True)
                                        for _ in range(cfg.depth // 2))
        self.img_out = nn.Linear(d, cfg.patch * cfg.patch * cfg.latent_channels)
        self.final_conv = nn.Conv2d(cfg.latent_channels, cfg.latent_channels, 3, padding=1)
        self.text_out = nn.Linear(d, cfg.text_dim)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """`f32[B, (H/p)*(W/p), p*p*C]` -> `f32[B, C, H, W]` (U-ViT's `nhwpqc->nchpwq`)."""
        cfg = self.cfg
        g, p, c = cfg.latent_size // cfg.patch, cfg.patch, cfg.latent_channels
        x = tokens.reshape(tokens.shape[0], g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(tokens.shape[0], c, g * p, g * p)

    def forward(self, img: torch.Tensor, text: torch.Tensor,
                t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`img: f32[B, C, H, W]`, `text: f32[B, T, E]`, `t: f32[B]` -> (img eps, text eps)."""
        img_tokens = self.patch_embed(img).flatten(2).transpose(1, 2)  # [B, (H/p)*(W/p), D]
        text_tokens = self.text_embed(text)
        time_token = self.time_embed(t)[:, None, :]
        x = torch.cat([time_token, text_tokens, img_tokens], dim=1) + self.pos_embed
        skips = []
        for block in self.in_blocks:
            x = block(x)
            skips.append(x)
        x = self.mid_block(x)
        for block in self.out_blocks:
            x = block(x, skips.pop())
        n_text = self.cfg.text_tokens
        text_eps = self.text_out(x[:, 1:1 + n_text])
        img_eps = self.final_conv(self.unpatchify(self.img_out(x[:, 1 + n_text:])))
        return img_eps, text_eps


@zoo_model("uvit_bidiffuser", paper="Zhao et al. 2023, EasyGen / BiDiffuser (arXiv:2310.08949); "
           "Bao et al. 2023, UniDiffuser (arXiv:2303.06555) and U-ViT (arXiv:2209.12152)",
           task="multimodal diffusion denoiser (image latent + text embedding)",
           dynamic_shapes=batch_dynamic_shapes(("img", "text", "t")),
           input_names=("img", "text", "t"),
           notes="One shared f32 timestep for both modalities; returns (img_eps, text_eps).")
def uvit_bidiffuser(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Build the BiDiffuser U-ViT at `size` ("tiny" or "bench") with seeded weights/inputs."""
    cfg = CONFIGS[size]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BiDiffuserUViT(cfg).eval()
    img, text = seeded_inputs(
        1, (cfg.batch, cfg.latent_channels, cfg.latent_size, cfg.latent_size),
        (cfg.batch, cfg.text_tokens, cfg.text_dim))
    return model, (img, text, seeded_timesteps(2, cfg.batch))
