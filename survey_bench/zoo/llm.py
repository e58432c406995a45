"""A small decoder-only language model in the LLaMA style, shared by easygen and vim_mllm.

Follows LLaMA (Touvron et al. 2023), the family behind Vicuna (EasyGen's LLM) and the
LLMs of most multimodal LLMs: pre-normalization with RMSNorm, rotary position embedding
(RoPE) on queries and keys, causal multi-head self-attention without biases, a SwiGLU
feed-forward block, a final RMSNorm and an untied language-model head.

Attention is written out (QK^T / sqrt(d), an additive causal mask, softmax, times V) rather
than calling F.scaled_dot_product_attention, whose decomposition after torch.export brings
in a fully-masked-row guard (eq, any, logical_not, where) that a compiler would have to
pattern-match away. The causal mask is a constant buffer sliced to the sequence length;
rotary angles are computed from integer positions, so the decode step takes its position
as a tensor and one exported graph serves every step.

Two entry points: `prefill(embeddings)` runs a whole prompt and returns the logits at the
last position plus the key/value caches stacked over layers, [layers, B, heads, S,
head_dim]; `decode(embedding, k_cache, v_cache, position)` runs one new token against the
caches and returns its logits and the caches grown by one position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LLMConfig:
    """Sizes of the decoder-only LLM."""

    vocab_size: int
    dim: int
    layers: int
    heads: int
    ffn_hidden: int
    max_seq: int = 512  # length of the causal-mask buffer; prefill may not be longer
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (no mean subtraction, no bias)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim).uniform_(0.8, 1.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary_tables(positions: torch.Tensor, inv_freq: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """cos and sin of the rotary angles, [S, head_dim], for int64 positions [S]."""
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return torch.cos(angles), torch.sin(angles)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i + d/2}) of x [B, heads, S, d] by the position's angles."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v for [B, heads, S, d] operands."""
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores + mask
    return torch.softmax(scores, dim=-1) @ v


def causal_mask(length: int) -> torch.Tensor:
    """[length, length] additive mask: 0 on and below the diagonal, -inf above."""
    return torch.full((length, length), float("-inf")).triu(1)


class SelfAttention(nn.Module):
    """Multi-head self-attention with RoPE; optionally appends to past keys and values."""

    def __init__(self, config: LLMConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = config.heads, config.head_dim
        self.wq = nn.Linear(config.dim, config.dim, bias=False)
        self.wk = nn.Linear(config.dim, config.dim, bias=False)
        self.wv = nn.Linear(config.dim, config.dim, bias=False)
        self.wo = nn.Linear(config.dim, config.dim, bias=False)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None, past_k: torch.Tensor | None = None,
                past_v: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Returns (output [B, S, dim], keys and values [B, heads, S_past + S, head_dim])."""
        q = apply_rotary(self._split(self.wq(x)), cos, sin)
        k = apply_rotary(self._split(self.wk(x)), cos, sin)
        v = self._split(self.wv(x))
        if past_k is not None and past_v is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        out = attention(q, k, v, mask).transpose(1, 2).flatten(2)
        return self.wo(out), k, v


class SwiGLU(nn.Module):
    """w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(nn.functional.silu(self.w1(x)) * self.w3(x))


class DecoderBlock(nn.Module):
    """x + attention(norm(x)), then + SwiGLU(norm(.))."""

    def __init__(self, config: LLMConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.attention = SelfAttention(config)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.ffn = SwiGLU(config.dim, config.ffn_hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None, past_k: torch.Tensor | None = None,
                past_v: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        attended, k, v = self.attention(self.attention_norm(x), cos, sin, mask, past_k, past_v)
        h = x + attended
        return h + self.ffn(self.ffn_norm(h)), k, v


class DecoderLM(nn.Module):
    """Token embedding, decoder blocks, final norm and LM head; prefill and decode entries."""

    def __init__(self, config: LLMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        nn.init.normal_(self.embed.weight, std=config.dim ** -0.5)
        self.blocks = nn.ModuleList(DecoderBlock(config) for _ in range(config.layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        inv_freq = config.rope_theta ** (
            -torch.arange(0, config.head_dim, 2, dtype=torch.float32) / config.head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.register_buffer("mask", causal_mask(config.max_seq), persistent=False)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, S] int64 token ids -> [B, S, dim] embeddings."""
        return self.embed(ids)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm and LM head: [..., dim] -> [..., vocab]."""
        return self.lm_head(self.norm(hidden))

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run embeddings x [B, S, dim] from position 0.

        Returns (all-position hidden states [B, S, dim], k_cache, v_cache), the caches
        [layers, B, heads, S, head_dim].
        """
        length = x.shape[1]
        if length > self.config.max_seq:
            raise ValueError(f"sequence of {length} exceeds max_seq={self.config.max_seq}")
        cos, sin = rotary_tables(torch.arange(length), self.inv_freq)
        mask = self.mask[:length, :length]
        keys, values = [], []
        for block in self.blocks:
            x, k, v = block(x, cos, sin, mask)
            keys.append(k)
            values.append(v)
        return x, torch.stack(keys), torch.stack(values)

    def decode(self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
               position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One new position: x [B, 1, dim], caches [layers, B, heads, S, head_dim], int64 position.

        Returns (logits [B, vocab], caches grown to S + 1). No mask is needed: the one new
        query may attend to every cached position and to itself.
        """
        cos, sin = rotary_tables(position.reshape(1), self.inv_freq)
        keys, values = [], []
        for layer, block in enumerate(self.blocks):
            x, k, v = block(x, cos, sin, None, k_cache[layer], v_cache[layer])
            keys.append(k)
            values.append(v)
        return self.logits(x[:, -1]), torch.stack(keys), torch.stack(values)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits at every position of token ids [B, S] (no cache): [B, S, vocab]."""
        hidden, _, _ = self.prefill(self.embed_tokens(ids))
        return self.logits(hidden)
