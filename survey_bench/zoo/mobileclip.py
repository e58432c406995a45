"""MobileCLIP (Vasu et al., CVPR 2024, "MobileCLIP: Fast Image-Text Models through
Multi-Modal Reinforced Training"), image and text towers in their train-time form.

The image tower is a MobileOne network (Vasu et al. 2023, "MobileOne: An Improved One
millisecond Mobile Backbone"), the structurally re-parameterizable family MobileCLIP's
image encoders build on. Each MobileOne block keeps its TRAIN-TIME multi-branch form: k
parallel conv+BN branches of the block's kernel, a 1x1 conv+BN "scale" branch when the
kernel is larger than 1, and a BN-only identity branch when the shapes allow, summed and
then activated. Blocks come in depthwise (3x3, groups = channels) and pointwise (1x1)
pairs. Merging the branches into one conv is left to the compiler (DESIGN.md section 4,
structural re-parameterization), so nothing here is re-parameterized.

The text tower is a CLIP-style causal transformer: token and learned position embeddings,
pre-norm blocks (LayerNorm, causal multi-head attention with an additive mask, GELU MLP), a
final LayerNorm, and the feature at the end-of-text token (the largest id, found with
argmax, as CLIP does). Both towers are projected to a shared embedding, L2-normalized, and
the output is the scaled image-text cosine-similarity matrix, logits [images, texts].

Faithful: MobileOne-S0's stage layout (stem 48, stages of 2/8/10/1 blocks with widths
48/128/256/1,024, k = 4 branches), the multi-branch blocks, CLIP's text tower design, the
contrastive head (exp(logit_scale) * cosine similarity). Scaled down or changed: MobileCLIP's
MCi encoders add FastViT-style RepMixer and attention stages and its MCt text encoder uses
RepMixer blocks; here the image tower is plain MobileOne and the text tower a 4-layer,
width-256 transformer; ReLU follows MobileOne (MCi uses GELU); no squeeze-excitation;
weights and batch-norm statistics are seeded random numbers.

Bench: 1 image 256 x 256 against 4 texts of 77 tokens. Eager latency: 84 ms.
Times are single-thread CPU time per inference (median of 11), which other processes
inflate far less than wall time; with torch.set_num_threads(2) expect a little over half
(aica_cnn: 35 ms on one thread, 19 ms wall on two, timed while the host was quiet). The
shared 2-core host was too loaded (load 4-9) for trustworthy two-thread wall times here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from survey_bench.zoo.llm import attention, causal_mask
from survey_bench.zoo.registry import zoo_model

PAPER = ("Vasu et al. 2024, MobileCLIP: Fast Image-Text Models through Multi-Modal Reinforced "
         "Training; MobileOne (Vasu et al. 2023) image tower")


@dataclass(frozen=True)
class CLIPSize:
    """Tower sizes and example batch of one zoo size."""

    image_size: int
    stem: int
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    branches: int
    vocab_size: int
    context: int
    text_width: int
    text_layers: int
    text_heads: int
    embed_dim: int
    images: int
    texts: int


SIZES = {
    "tiny": CLIPSize(32, 8, (8, 16, 32, 64), (1, 1, 1, 1), 2, vocab_size=100, context=16,
                     text_width=32, text_layers=1, text_heads=2, embed_dim=32, images=2, texts=3),
    "bench": CLIPSize(256, 48, (48, 128, 256, 1_024), (2, 8, 10, 1), 4, vocab_size=49_408,
                      context=77, text_width=256, text_layers=4, text_heads=4, embed_dim=512,
                      images=1, texts=4),
}


class ConvBN(nn.Sequential):
    """conv (no bias) followed by batch norm: one branch of a MobileOne block."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups,
                                   bias=False), nn.BatchNorm2d(cout))


class MobileOneBlock(nn.Module):
    """Train-time MobileOne block: sum of k conv+BN, a 1x1 conv+BN and a BN identity; ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int,
                 branches: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(ConvBN(cin, cout, kernel, stride, groups)
                                   for _ in range(branches))
        self.scale = ConvBN(cin, cout, 1, stride, groups) if kernel > 1 else None
        self.identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs[0](x)
        for conv in self.convs[1:]:
            out = out + conv(x)
        if self.scale is not None:
            out = out + self.scale(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return torch.relu(out)


class MobileOne(nn.Module):
    """MobileOne image tower: stem, depthwise/pointwise block pairs, global pool, projection."""

    def __init__(self, spec: CLIPSize) -> None:
        super().__init__()
        layers: list[nn.Module] = [MobileOneBlock(3, spec.stem, 3, 2, 1, spec.branches)]
        channels = spec.stem
        for width, count in zip(spec.widths, spec.blocks):
            for index in range(count):
                stride = 2 if index == 0 else 1
                layers.append(MobileOneBlock(channels, channels, 3, stride, channels,
                                             spec.branches))
                layers.append(MobileOneBlock(channels, width, 1, 1, 1, spec.branches))
                channels = width
        self.features = nn.Sequential(*layers)
        self.projection = nn.Linear(channels, spec.embed_dim, bias=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(image).mean(dim=(2, 3)))


class TextBlock(nn.Module):
    """CLIP text block: x + causal MHA(LN(x)), then + MLP(LN(.)) with GELU."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        x = x + self.out(attention(q, k, v, mask).transpose(1, 2).flatten(2))
        return x + self.mlp(self.norm2(x))


class TextTransformer(nn.Module):
    """CLIP-style causal text tower; the end-of-text token (largest id) gives the feature."""

    def __init__(self, spec: CLIPSize) -> None:
        super().__init__()
        self.token = nn.Embedding(spec.vocab_size, spec.text_width)
        nn.init.normal_(self.token.weight, std=0.02)
        self.position = nn.Parameter(torch.randn(spec.context, spec.text_width) * 0.01)
        self.blocks = nn.ModuleList(TextBlock(spec.text_width, spec.text_heads)
                                    for _ in range(spec.text_layers))
        self.final_norm = nn.LayerNorm(spec.text_width)
        self.projection = nn.Linear(spec.text_width, spec.embed_dim, bias=False)
        self.register_buffer("mask", causal_mask(spec.context), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token(ids) + self.position
        for block in self.blocks:
            x = block(x, self.mask)
        x = self.final_norm(x)
        end_of_text = x[torch.arange(ids.shape[0]), ids.argmax(dim=-1)]
        return self.projection(end_of_text)


class MobileCLIP(nn.Module):
    """Image and text towers, L2-normalized embeddings, scaled cosine-similarity logits."""

    def __init__(self, spec: CLIPSize) -> None:
        super().__init__()
        self.image_encoder = MobileOne(spec)
        self.text_encoder = TextTransformer(spec)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, image: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """logits_per_image [images, texts]."""
        image_embedding = nn.functional.normalize(self.image_encoder(image), dim=-1)
        text_embedding = nn.functional.normalize(self.text_encoder(ids), dim=-1)
        return self.logit_scale.exp() * image_embedding @ text_embedding.T


def _randomize_batchnorm(model: nn.Module) -> None:
    """Seeded non-trivial affine parameters and running statistics for every batch norm."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.0)
            nn.init.uniform_(module.bias, -0.1, 0.1)
            nn.init.uniform_(module.running_mean, -0.1, 0.1)
            nn.init.uniform_(module.running_var, 0.5, 2.0)


def token_batch(texts: int, context: int, vocab_size: int,
                generator: torch.Generator) -> torch.Tensor:
    """CLIP-tokenizer-shaped ids: start token, words, end token (the largest id), zero padding."""
    start, end = vocab_size - 2, vocab_size - 1
    ids = torch.zeros(texts, context, dtype=torch.int64)
    lengths = torch.randint(3, context + 1, (texts,), generator=generator)
    for row, length in enumerate(lengths.tolist()):
        ids[row, 0] = start
        ids[row, 1:length - 1] = torch.randint(1, start, (length - 2,), generator=generator)
        ids[row, length - 1] = end
    return ids


@zoo_model("mobileclip", paper=PAPER, task="image-text matching (zero-shot classification)",
           input_names=("image", "ids"))
def mobileclip(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """MobileCLIP with a train-time (multi-branch) MobileOne image tower and a causal text tower."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} for mobileclip; sizes: {', '.join(SIZES)}")
    spec = SIZES[size]
    torch.manual_seed(0)
    model = MobileCLIP(spec)
    _randomize_batchnorm(model)
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(spec.images, 3, spec.image_size, spec.image_size, generator=generator)
    ids = token_batch(spec.texts, spec.context, spec.vocab_size, generator)
    return model.eval(), (image, ids)
