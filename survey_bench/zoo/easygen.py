"""EasyGen's image-to-text path (Zhao et al. 2023, "Making Multimodal Generation Easier: When
Diffusion Models Meet LLMs").

EasyGen reads an image with BiDiffuser, a bidirectional conditional diffusion model
fine-tuned from UniDiffuser, whose image-to-text direction yields text-space features: 77
tokens of a 64-dimensional latent (UniDiffuser's reduced CLIP text embedding). A projection
layer (an MLP) maps them into the LLM's embedding space, they are placed before the
embedded prompt, and the LLM (Vicuna, a LLaMA) continues the sequence. This model is that
bridge: inputs (image features [B, 77, 64], prompt token ids [B, T]); output the next-token
logits at the last position, [B, vocab].

Faithful: the feature shape from BiDiffuser, an MLP projection (Linear, GELU, Linear), the
prefix-then-prompt layout and a LLaMA-style decoder (llm.py: RMSNorm, RoPE, SwiGLU, causal
attention, untied head, the LLaMA 32,000-token vocabulary). Scaled down: the LLM is 8
layers of width 512 (8 heads, SwiGLU hidden 1,376) instead of Vicuna-7B's 32 of 4,096; the
diffusion model is not run (its features are an input); weights are seeded random numbers.

Eager latency at bench size (1 x 77 feature tokens, 32 prompt tokens): 72 ms.
Times are single-thread CPU time per inference (median of 11), which other processes
inflate far less than wall time; with torch.set_num_threads(2) expect a little over half
(aica_cnn: 35 ms on one thread, 19 ms wall on two, timed while the host was quiet). The
shared 2-core host was too loaded (load 4-9) for trustworthy two-thread wall times here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from survey_bench.zoo.llm import DecoderLM, LLMConfig
from survey_bench.zoo.registry import zoo_model

PAPER = ("Zhao et al. 2023, Making Multimodal Generation Easier: When Diffusion Models Meet "
         "LLMs (EasyGen)")


@dataclass(frozen=True)
class EasyGenSize:
    """BiDiffuser feature shape, prompt length and the LLM."""

    feature_tokens: int
    feature_dim: int
    prompt_tokens: int
    llm: LLMConfig


SIZES = {
    "tiny": EasyGenSize(8, 16, 6, LLMConfig(vocab_size=64, dim=32, layers=2, heads=2,
                                            ffn_hidden=64, max_seq=32)),
    "bench": EasyGenSize(77, 64, 32, LLMConfig(vocab_size=32_000, dim=512, layers=8, heads=8,
                                               ffn_hidden=1_376, max_seq=256)),
}


class EasyGenBridge(nn.Module):
    """BiDiffuser features -> MLP projection -> prefix of a decoder-only LLM -> logits."""

    def __init__(self, feature_dim: int, llm: LLMConfig) -> None:
        super().__init__()
        self.projection = nn.Sequential(nn.Linear(feature_dim, llm.dim), nn.GELU(),
                                        nn.Linear(llm.dim, llm.dim))
        self.llm = DecoderLM(llm)

    def forward(self, image_features: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits [B, vocab] after the image prefix and the prompt."""
        prefix = self.projection(image_features)
        sequence = torch.cat([prefix, self.llm.embed_tokens(ids)], dim=1)
        hidden, _, _ = self.llm.prefill(sequence)
        return self.llm.logits(hidden[:, -1])


@zoo_model("easygen_bridge", paper=PAPER, task="image-to-text: diffusion features into an LLM",
           input_names=("image_features", "ids"))
def easygen_bridge(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """EasyGen's projection layer and LLM, on seeded BiDiffuser-shaped features."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} for easygen_bridge; sizes: {', '.join(SIZES)}")
    spec = SIZES[size]
    torch.manual_seed(0)
    model = EasyGenBridge(spec.feature_dim, spec.llm).eval()
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(1, spec.feature_tokens, spec.feature_dim, generator=generator)
    ids = torch.randint(1, spec.llm.vocab_size, (1, spec.prompt_tokens), generator=generator)
    return model, (features, ids)
