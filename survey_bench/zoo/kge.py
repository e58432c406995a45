"""Knowledge-graph embedding models benchmarked by CoDEx (Safavi & Koutra, EMNLP 2020).

CoDEx ("CoDEx: A Comprehensive Knowledge Graph Completion Benchmark") evaluates five
link-prediction models with LibKGE: RESCAL (Nickel et al. 2011), TransE (Bordes et al.
2013), ComplEx (Trouillon et al. 2016), ConvE (Dettmers et al. 2018) and TuckER (Balazevic
et al. 2019). Each model here scores a batch of (head, relation) queries against every
entity at once ("1-N scoring", as LibKGE's `score_sp` does), returning raw scores
[batch, entities]; the sigmoid or softmax of the training loss is left out.

Faithful: each scoring function, ConvE's 2-D reshaping, convolution, batch norms and
projection, TuckER's core-tensor contraction with its batch norms. Scaled or synthetic:
weights and batch-norm statistics are seeded random numbers, not trained; embedding sizes
come from the ranges LibKGE searches for CoDEx (RESCAL 256, TransE 256 with the L2 norm,
ComplEx 256 complex = 512 real, ConvE 200 = 10 x 20, TuckER d_e = d_r = 200), not from
CoDEx's tuned configurations; dropout is an identity at inference and is omitted.

Bench size: CoDEx-M (17,050 entities, 51 relations), 128 queries per batch. Eager latency:
rescal 25 ms, transe 20 ms, complex 18 ms, conve 16 ms, tucker 27 ms. Tiny: 100 entities,
6 relations, 4 queries.
Times are single-thread CPU time per inference (median of 11), which other processes
inflate far less than wall time; with torch.set_num_threads(2) expect a little over half
(aica_cnn: 35 ms on one thread, 19 ms wall on two, timed while the host was quiet). The
shared 2-core host was too loaded (load 4-9) for trustworthy two-thread wall times here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from survey_bench.zoo.registry import zoo_model

PAPER = "Safavi & Koutra 2020, CoDEx: A Comprehensive Knowledge Graph Completion Benchmark"
INPUTS = ("heads", "relations")


@dataclass(frozen=True)
class KGSize:
    """Knowledge-graph and batch size: entity and relation counts, queries per batch."""

    entities: int
    relations: int
    batch: int


SIZES = {"tiny": KGSize(100, 6, 4), "bench": KGSize(17_050, 51, 128)}


def _size(size: str) -> KGSize:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} for a KGE model; sizes: {', '.join(SIZES)}")
    return SIZES[size]


def _embedding(count: int, dim: int) -> nn.Embedding:
    embedding = nn.Embedding(count, dim)
    nn.init.normal_(embedding.weight, std=dim ** -0.5)
    return embedding


def _randomize_batchnorm(model: nn.Module) -> None:
    """Seeded non-trivial affine parameters and running statistics for every batch norm."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
            nn.init.uniform_(module.running_mean, -0.2, 0.2)
            nn.init.uniform_(module.running_var, 0.5, 1.5)


class KGEModel(nn.Module):
    """Entity and relation embeddings; subclasses define `query` (the head-relation part)."""

    def __init__(self, entities: int, relations: int, entity_dim: int, relation_dim: int) -> None:
        super().__init__()
        self.entity = _embedding(entities, entity_dim)
        self.relation = _embedding(relations, relation_dim)

    def query(self, head: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """Scores of every entity as the tail of each (head, relation): [batch, entities]."""
        return self.query(self.entity(heads), self.relation(relations)) @ self.entity.weight.T


class RESCAL(KGEModel):
    """score(h, r, t) = e_h^T W_r e_t with a full d x d matrix per relation."""

    def __init__(self, entities: int, relations: int, dim: int) -> None:
        super().__init__(entities, relations, dim, dim * dim)
        self.dim = dim

    def query(self, head: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        matrices = relation.view(-1, self.dim, self.dim)
        return torch.bmm(head.unsqueeze(1), matrices).squeeze(1)


class TransE(KGEModel):
    """score(h, r, t) = -||e_h + r - e_t||_2, expanded as |q|^2 - 2 q.e_t + |e_t|^2."""

    def __init__(self, entities: int, relations: int, dim: int) -> None:
        super().__init__(entities, relations, dim, dim)

    def forward(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        query = self.entity(heads) + self.relation(relations)
        tails = self.entity.weight
        squared = ((query * query).sum(-1, keepdim=True) - 2.0 * query @ tails.T
                   + (tails * tails).sum(-1))
        return -torch.sqrt(torch.clamp(squared, min=0.0))


class ComplEx(KGEModel):
    """score(h, r, t) = Re(<e_h, r, conj(e_t)>), real and imaginary halves side by side."""

    def __init__(self, entities: int, relations: int, dim: int) -> None:
        super().__init__(entities, relations, 2 * dim, 2 * dim)

    def query(self, head: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        h_re, h_im = head.chunk(2, dim=-1)
        r_re, r_im = relation.chunk(2, dim=-1)
        return torch.cat([h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re], dim=-1)


class ConvE(KGEModel):
    """ConvE: stack 2-D reshaped e_h and r, conv, project back, dot with every e_t + bias."""

    def __init__(self, entities: int, relations: int, height: int, width: int,
                 channels: int) -> None:
        dim = height * width
        super().__init__(entities, relations, dim, dim)
        self.height, self.width = height, width
        self.input_norm = nn.BatchNorm2d(1)
        self.conv = nn.Conv2d(1, channels, kernel_size=3)
        self.feature_norm = nn.BatchNorm2d(channels)
        self.project = nn.Linear(channels * (2 * height - 2) * (width - 2), dim)
        self.hidden_norm = nn.BatchNorm1d(dim)
        self.entity_bias = nn.Parameter(torch.zeros(entities).uniform_(-0.1, 0.1))

    def forward(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        shape = (-1, 1, self.height, self.width)
        image = torch.cat([self.entity(heads).view(shape), self.relation(relations).view(shape)],
                          dim=2)
        x = torch.relu(self.feature_norm(self.conv(self.input_norm(image))))
        x = torch.relu(self.hidden_norm(self.project(x.flatten(1))))
        return x @ self.entity.weight.T + self.entity_bias


class TuckER(KGEModel):
    """TuckER: W x_1 e_h x_2 w_r x_3 e_t with a shared core tensor W [d_r, d_e, d_e]."""

    def __init__(self, entities: int, relations: int, entity_dim: int, relation_dim: int) -> None:
        super().__init__(entities, relations, entity_dim, relation_dim)
        self.entity_dim = entity_dim
        self.core = nn.Parameter(torch.empty(relation_dim, entity_dim * entity_dim).uniform_(-1, 1)
                                 * entity_dim ** -0.5)
        self.input_norm = nn.BatchNorm1d(entity_dim)
        self.hidden_norm = nn.BatchNorm1d(entity_dim)

    def query(self, head: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
        core = (relation @ self.core).view(-1, self.entity_dim, self.entity_dim)
        x = torch.bmm(self.input_norm(head).unsqueeze(1), core).squeeze(1)
        return self.hidden_norm(x)


def _build(model_class: type[KGEModel], size: str,
           widths: dict[str, dict[str, int]]) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    kg = _size(size)
    torch.manual_seed(0)
    model = model_class(kg.entities, kg.relations, **widths[size])
    _randomize_batchnorm(model)
    generator = torch.Generator().manual_seed(1)
    heads = torch.randint(0, kg.entities, (kg.batch,), generator=generator)
    relations = torch.randint(0, kg.relations, (kg.batch,), generator=generator)
    return model.eval(), (heads, relations)


@zoo_model("kge_rescal", paper=PAPER + "; Nickel et al. 2011 (RESCAL)",
           task="link prediction, 1-N scoring", input_names=INPUTS)
def kge_rescal(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """RESCAL: a bilinear score with a full matrix per relation."""
    return _build(RESCAL, size, {"tiny": {"dim": 16}, "bench": {"dim": 256}})


@zoo_model("kge_transe", paper=PAPER + "; Bordes et al. 2013 (TransE)",
           task="link prediction, 1-N scoring", input_names=INPUTS)
def kge_transe(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """TransE: relations as translations, L2 distance."""
    return _build(TransE, size, {"tiny": {"dim": 16}, "bench": {"dim": 256}})


@zoo_model("kge_complex", paper=PAPER + "; Trouillon et al. 2016 (ComplEx)",
           task="link prediction, 1-N scoring", input_names=INPUTS)
def kge_complex(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """ComplEx: a trilinear product of complex embeddings."""
    return _build(ComplEx, size, {"tiny": {"dim": 8}, "bench": {"dim": 256}})


@zoo_model("kge_conve", paper=PAPER + "; Dettmers et al. 2018 (ConvE)",
           task="link prediction, 1-N scoring", input_names=INPUTS)
def kge_conve(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """ConvE: a 2-D convolution over reshaped head and relation embeddings."""
    return _build(ConvE, size, {"tiny": {"height": 4, "width": 4, "channels": 4},
                                "bench": {"height": 10, "width": 20, "channels": 32}})


@zoo_model("kge_tucker", paper=PAPER + "; Balazevic et al. 2019 (TuckER)",
           task="link prediction, 1-N scoring", input_names=INPUTS)
def kge_tucker(size: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """TuckER: a Tucker decomposition of the binary tensor of facts."""
    return _build(TuckER, size, {"tiny": {"entity_dim": 12, "relation_dim": 8},
                                 "bench": {"entity_dim": 200, "relation_dim": 200}})
