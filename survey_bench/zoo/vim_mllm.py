"""A small multimodal LLM of the kind VIM evaluates (Lu et al. 2023, "VIM: Probing Multimodal
Large Language Models for Visual Embedded Instruction Following").

VIM probes MLLMs such as LLaVA, InstructBLIP and MiniGPT-4 by embedding the instruction in
the image. The model here has LLaVA-1.5's shape (Liu et al. 2023): a ViT image encoder (a
patchify convolution, a class token and learned position embeddings, pre-norm transformer
blocks with LayerNorm, biased multi-head attention and a GELU MLP) whose patch tokens go
through an MLP projector (Linear, GELU, Linear) and are placed before the embedded prompt
of a LLaMA-style decoder-only LLM (llm.py).

It is split into the two graphs a serving stack compiles: `vim_mllm.prefill(image, prompt
ids) -> (logits [B, vocab], k_cache, v_cache)` with caches [layers, B, heads, S, head_dim],
and `vim_mllm.decode_step(token [B, 1], k_cache, v_cache, position) -> (logits, new
k_cache, new v_cache)` whose cache length S is symbolic (`dynamic_shapes`), so one exported
graph serves every step. `generate` runs greedy decoding with any two callables on NumPy
arrays (eager modules, a dlc build, ONNX Runtime).

Faithful: the architecture's parts and how they connect, KV caching with RoPE positions
continuing after the prompt. Scaled down: ViT-S-like tower (224 x 224, patch 16, width 384,
6 blocks, 6 heads) instead of CLIP ViT-L/14-336; LLaVA reads the penultimate layer of its
tower, which here is simply the last of the 6; the LLM has 6 layers of width 512 instead of
Vicuna-7B's 32 of 4,096; weights are seeded random numbers, so the text is meaningless.

Eager latency at bench size (1 image, 16 prompt tokens, a 212-token prefill): prefill
137 ms, decode_step 16 ms (at S = 212).
Times are single-thread CPU time per inference (median of 11), which other processes
inflate far less than wall time; with torch.set_num_threads(2) expect a little over half
(aica_cnn: 35 ms on one thread, 19 ms wall on two, timed while the host was quiet). The
shared 2-core host was too loaded (load 4-9) for trustworthy two-thread wall times here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from survey_bench.zoo.llm import DecoderLM, LLMConfig, attention
from survey_bench.zoo.registry import zoo_model

PAPER = ("Lu et al. 2023, VIM: Probing Multimodal Large Language Models for Visual Embedded "
         "Instruction Following; LLaVA-1.5 architecture (Liu et al. 2023)")


@dataclass(frozen=True)
class VisionConfig:
    """Sizes of the ViT image encoder."""

    image_size: int
    patch: int
    dim: int
    layers: int
    heads: int
    mlp_hidden: int

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch) ** 2


@dataclass(frozen=True)
class MLLMSize:
    """One zoo size: encoder, LLM, batch and prompt length."""

    vision: VisionConfig
    llm: LLMConfig
    batch: int
    prompt_tokens: int


SIZES = {
    "tiny": MLLMSize(VisionConfig(16, 8, 16, 1, 2, 32),
                     LLMConfig(vocab_size=64, dim=32, layers=2, heads=2, ffn_hidden=64,
                               max_seq=64), batch=2, prompt_tokens=5),
    "bench": MLLMSize(VisionConfig(224, 16, 384, 6, 6, 1_536),
                      LLMConfig(vocab_size=32_000, dim=512, layers=6, heads=8, ffn_hidden=1_376,
                                max_seq=512), batch=1, prompt_tokens=16),
}


class ViTBlock(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)), then + MLP(LN(.)) with GELU."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_hidden), nn.GELU(), nn.Linear(mlp_hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        x = x + self.proj(attention(q, k, v, None).transpose(1, 2).flatten(2))
        return x + self.mlp(self.norm2(x))


class VisionTower(nn.Module):
    """ViT: patchify conv, class token, position embeddings, blocks; returns patch tokens."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.patchify = nn.Conv2d(3, config.dim, config.patch, stride=config.patch)
        self.class_token = nn.Parameter(torch.randn(1, 1, config.dim) * 0.02)
        self.position = nn.Parameter(torch.randn(1, config.patches + 1, config.dim) * 0.02)
        self.pre_norm = nn.LayerNorm(config.dim)
        self.blocks = nn.Sequential(*(ViTBlock(config.dim, config.heads, config.mlp_hidden)
                                      for _ in range(config.layers)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> patch features [B, patches, dim]."""
        patches = self.patchify(image).flatten(2).transpose(1, 2)
        cls = self.class_token.expand(patches.shape[0], -1, -1)
        x = self.pre_norm(torch.cat([cls, patches], dim=1) + self.position)
        return self.blocks(x)[:, 1:]


class MultimodalLLM(nn.Module):
    """ViT -> MLP projector -> image tokens before the prompt in a decoder-only LLM."""

    def __init__(self, vision: VisionConfig, llm: LLMConfig) -> None:
        super().__init__()
        self.vision = VisionTower(vision)
        self.projector = nn.Sequential(nn.Linear(vision.dim, llm.dim), nn.GELU(),
                                       nn.Linear(llm.dim, llm.dim))
        self.llm = DecoderLM(llm)

    def embed(self, image: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The LLM's input sequence: projected image tokens, then prompt embeddings."""
        image_tokens = self.projector(self.vision(image))
        return torch.cat([image_tokens, self.llm.embed_tokens(ids)], dim=1)

    def prefill(self, image: torch.Tensor,
                ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits [B, vocab] at the last position and the stacked k/v caches."""
        hidden, k_cache, v_cache = self.llm.prefill(self.embed(image, ids))
        return self.llm.logits(hidden[:, -1]), k_cache, v_cache

    def all_logits(self, image: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits at every position without a cache, [B, S, vocab] (a reference for tests)."""
        hidden, _, _ = self.llm.prefill(self.embed(image, ids))
        return self.llm.logits(hidden)


class Prefill(nn.Module):
    """The prefill graph: (image, prompt ids) -> (logits, k_cache, v_cache)."""

    def __init__(self, mllm: MultimodalLLM) -> None:
        super().__init__()
        self.mllm = mllm

    def forward(self, image: torch.Tensor,
                ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.mllm.prefill(image, ids)


class DecodeStep(nn.Module):
    """The decode graph: (token [B, 1], k_cache, v_cache, position) -> (logits, caches + 1).

    It holds only the LLM, so the image encoder's weights are not inputs of this graph.
    """

    def __init__(self, llm: DecoderLM) -> None:
        super().__init__()
        self.llm = llm

    def forward(self, token: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.llm.decode(self.llm.embed_tokens(token), k_cache, v_cache, position)


def _size(size: str) -> MLLMSize:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} for vim_mllm; sizes: {', '.join(SIZES)}")
    return SIZES[size]


def build(size: str) -> tuple[MultimodalLLM, torch.Tensor, torch.Tensor]:
    """The seeded model (eval mode) and its example image and prompt ids."""
    spec = _size(size)
    torch.manual_seed(0)
    model = MultimodalLLM(spec.vision, spec.llm).eval()
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(spec.batch, 3, spec.vision.image_size, spec.vision.image_size,
                        generator=generator)
    ids = torch.randint(1, spec.llm.vocab_size, (spec.batch, spec.prompt_tokens),
                        generator=generator)
    return model, image, ids


def decode_dynamic_shapes() -> dict[str, Any]:
    """torch.export dynamic shapes of decode_step: the cache length S (2..4,096) is symbolic.

    Batch, heads and widths stay static; the outputs' caches have length S + 1.
    """
    length = torch.export.Dim("S", min=2, max=4_096)
    return {"token": None, "k_cache": {3: length}, "v_cache": {3: length}, "position": None}


@zoo_model("vim_mllm.prefill", paper=PAPER, task="multimodal LLM: image + prompt prefill",
           input_names=("image", "ids"))
def vim_mllm_prefill(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The prefill graph of the MLLM and an example image and prompt."""
    model, image, ids = build(size)
    return Prefill(model).eval(), (image, ids)


@zoo_model("vim_mllm.decode_step", paper=PAPER, task="multimodal LLM: one KV-cached decode step",
           dynamic_shapes=decode_dynamic_shapes,
           input_names=("token", "k_cache", "v_cache", "position"))
def vim_mllm_decode_step(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The decode graph; example inputs are the caches and greedy token after the prefill."""
    model, image, ids = build(size)
    with torch.no_grad():
        logits, k_cache, v_cache = model.prefill(image, ids)
    token = logits.argmax(-1, keepdim=True)
    position = torch.tensor(k_cache.shape[3], dtype=torch.int64)
    return DecodeStep(model.llm).eval(), (token, k_cache, v_cache, position)


NumpyFn = Callable[..., Any]


def generate(prefill: NumpyFn, decode_step: NumpyFn, image: np.ndarray, prompt: np.ndarray,
             n_tokens: int) -> np.ndarray:
    """Greedy decoding: int64 tokens [B, n_tokens] after `prompt`.

    `prefill(image, prompt)` and `decode_step(token, k_cache, v_cache, position)` take and
    return NumPy arrays, with the signatures of `vim_mllm.prefill` and
    `vim_mllm.decode_step`; the position of each new token is the cache length.
    """
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be at least 1, got {n_tokens}")
    logits, k_cache, v_cache = (np.asarray(a) for a in prefill(np.asarray(image),
                                                                np.asarray(prompt, np.int64)))
    tokens = [logits.argmax(-1).astype(np.int64)]
    for _ in range(n_tokens - 1):
        position = np.asarray(k_cache.shape[3], dtype=np.int64)
        logits, k_cache, v_cache = (np.asarray(a) for a in decode_step(
            tokens[-1][:, None], k_cache, v_cache, position))
        tokens.append(logits.argmax(-1).astype(np.int64))
    return np.stack(tokens, axis=1)
