"""Pictures of the graph IR (graphviz): ops as boxes, shapes on edges, fused groups as
coloured clusters. `dlc viz MODEL -o graph.svg [--after PASS]`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dlc.ir.graph import Constant, Graph, Value
from dlc.ir.printer import Namer

# Fill colours per fusion kind of a group (light, so the op labels stay readable).
KIND_COLOURS = {"elementwise": "#e3f2fd", "broadcast": "#e8f5e9", "injective": "#fff8e1",
                "reduction": "#fce4ec", "out_fusable": "#ede7f6", "opaque": "#eeeeee"}


def to_dot(graph: Graph, plan: Any = None, max_label: int = 40) -> Any:
    """A graphviz Digraph of `graph`; with a fusion plan, each group is a cluster."""
    import graphviz

    namer = Namer(graph)
    dot = graphviz.Digraph(graph.name, graph_attr={"rankdir": "TB", "fontname": "Helvetica"},
                           node_attr={"shape": "box", "style": "rounded,filled",
                                      "fillcolor": "white", "fontname": "Helvetica",
                                      "fontsize": "10"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "8"})
    for v in graph.inputs:
        dot.node(_id(namer, v), f"%{namer.names[v]}\\n{v.type}", shape="ellipse",
                 fillcolor="#fffde7")

    def node_label(n: Any) -> str:
        outs = ", ".join(f"%{namer.names[v]}" for v in n.outputs)
        where = f"\\n{n.loc.name}" if n.loc and n.loc.name else ""
        return f"{outs} = {n.op.name}{where}"[: max_label * 2]

    groups = plan.groups if plan is not None else [None]
    grouped = set()
    for g in groups:
        nodes = g.nodes if g is not None else [n for n in graph.nodes]
        if g is not None:
            with dot.subgraph(name=f"cluster_{g.index}") as sub:
                sub.attr(label=f"#{g.index} {g.name} ({g.kind.value})", style="filled",
                         color=KIND_COLOURS.get(g.kind.value, "#eeeeee"), fontsize="9")
                for n in nodes:
                    sub.node(f"n{id(n)}", node_label(n))
                    grouped.add(id(n))
        else:
            for n in nodes:
                dot.node(f"n{id(n)}", node_label(n))
    producer = graph.producers
    for n in graph.nodes:
        for v in n.inputs:
            if isinstance(v, Constant):
                continue  # weights would drown the picture; their uses show in the labels
            src = f"n{id(producer[v])}" if v in producer else _id(namer, v)
            dot.edge(src, f"n{id(n)}", label=str(v.type))
    for k, v in enumerate(graph.outputs):
        dot.node(f"out{k}", f"return {k}\\n{v.type}", shape="ellipse", fillcolor="#fffde7")
        if v in producer:
            dot.edge(f"n{id(producer[v])}", f"out{k}")
    return dot


def _id(namer: Namer, v: Value) -> str:
    return f"in_{namer.names[v]}"


def render(graph: Graph, path: str | Path, plan: Any = None) -> tuple[Path, str]:
    """Write the picture; returns (path written, message). Without graphviz's `dot`
    program, writes the `.dot` source instead and says so."""
    path = Path(path)
    dot = to_dot(graph, plan)
    fmt = path.suffix.lstrip(".") or "svg"
    if fmt == "dot" or shutil.which("dot") is None:
        out = path.with_suffix(".dot")
        out.write_text(dot.source)
        note = "" if fmt == "dot" else (" (graphviz's `dot` program is not installed: wrote "
                                        "the .dot source; `dot -Tsvg` renders it)")
        return out, f"wrote {out}{note}"
    rendered = dot.render(outfile=str(path), format=fmt, cleanup=True)
    return Path(rendered), f"wrote {rendered}"
