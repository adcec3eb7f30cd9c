"""What a traced generator does around its whitelisted layers: class labels, batch sizes, reshapes.

Used by :func:`gancompress.channels.graph_of` (``--format shrunk``, ``prune --coupled``).

Class labels. A class-conditional generator ``forward(z, labels)`` (docs/custom_networks.md)
computes something from the label alone (an embedding, reshaped, scaled, projected, one-hot,
...) before that meets the latent. Whatever the user's code does there, it is a function of the
class, so it is run once for every class and kept as a table
(:class:`~gancompress.formats.shrunk.LabelTable`, ``forward(labels) = value[labels]``): exact by
construction, and the shrunk graph needs none of the user's code. The tables are the values of
the *frontier*: nodes that depend on the labels and not on the latent, read by a node that does.
A label branch that is not per sample (mixes the batch) is caught by the exporter's check of
the shrunk network against the masked one on a batch of different labels.

Sizes and reshapes. ``x.size(0)`` / ``x.shape[0]`` (the batch size) may feed a reshape; any
other size read is refused. ``view``/``reshape`` to ``(batch or -1, ...)``, ``flatten(1)``,
``nn.Flatten()``, ``nn.Unflatten(1, ...)`` and ``unsqueeze`` become per-sample reshapes: the
batch dimension stays first, the rest is replayed as it was traced.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

from .errors import InputError

ADVICE = "use --format dense (or sparse): both export the pruned generator exactly"
CHUNK = 64  # classes per tabulation run


def refuse(what: str) -> InputError:
    return InputError(f"--format shrunk cannot shrink this generator: {what}; {ADVICE}")


# ----------------------------------------------------------------------------- sizes


def is_size(n: fx.Node) -> bool:
    """``x.size(...)``, ``x.shape`` or an item of one: not a tensor of the graph."""
    if n.op == "call_method" and n.target == "size":
        return True
    if n.op == "call_function" and n.target is getattr and n.args[1:2] == ("shape",):
        return True
    return (n.op == "call_function" and n.target is operator.getitem and isinstance(n.args[0], fx.Node)
            and is_size(n.args[0]))


def _is_batch(v: object) -> bool:
    """``v`` is the batch size of a traced tensor: ``x.size(0)``, ``x.shape[0]``, ``x.size()[0]``."""
    if not isinstance(v, fx.Node):
        return False
    if v.op == "call_method" and v.target == "size":
        return v.args[1:] == (0,) or v.kwargs == {"dim": 0}
    return v.op == "call_function" and v.target is operator.getitem and v.args[1] == 0 and is_size(v.args[0]) \
        and not (v.args[0].op == "call_method" and len(v.args[0].args) > 1)


# ----------------------------------------------------------------------------- reshapes


def _dims(fxn: fx.Node) -> tuple:
    dims = fxn.args[1:] if fxn.op == "call_method" else fxn.args[1:2] or (fxn.kwargs.get("shape"),)
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return dims


def _per_sample(fxn: fx.Node, dims: tuple) -> list[int]:
    """The per-sample shape of ``view``/``reshape(batch or -1, *rest)``."""
    if not dims or not (_is_batch(dims[0]) or dims[0] == -1):
        raise refuse(f"a {fxn.target if isinstance(fxn.target, str) else 'reshape'} to {dims!r} that does not keep the "
                     "batch size first")
    rest = list(dims[1:])
    if not rest or not all(isinstance(d, int) and not isinstance(d, bool) and (d > 0 or d == -1) for d in rest) \
            or rest.count(-1) > (0 if dims[0] == -1 else 1):
        raise refuse(f"a reshape to {dims!r} (only whole numbers after the batch size, at most one -1)")
    return rest


def reshape_node(fxn: fx.Node, index: dict[fx.Node, int]) -> dict | None:
    """A per-sample ``reshape``/``unsqueeze`` node for a traced reshape call; None when ``fxn`` is none."""
    method = fxn.target if fxn.op == "call_method" else None
    function = fxn.target if fxn.op == "call_function" else None
    if method in ("view", "reshape") or function is torch.reshape:
        if fxn.kwargs and function is None:
            raise refuse(f"a reshape with arguments {fxn.kwargs}")
        return {"op": "reshape", "in": [index[fxn.args[0]]], "shape": _per_sample(fxn, _dims(fxn))}
    if method == "flatten" or function is torch.flatten:
        start = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("start_dim", 0)
        end = fxn.args[2] if len(fxn.args) > 2 else fxn.kwargs.get("end_dim", -1)
        if (start, end) != (1, -1):
            raise refuse(f"flatten({start}, {end}) (only flatten(1) keeps the batch dimension)")
        return {"op": "reshape", "in": [index[fxn.args[0]]], "shape": [-1]}
    if method == "unsqueeze" or function is torch.unsqueeze:
        dim = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("dim")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim == 0:
            raise refuse(f"unsqueeze({dim!r}) (the batch dimension stays first)")
        return {"op": "unsqueeze", "in": [index[fxn.args[0]]], "dim": dim}
    return None


def module_reshape(name: str, m: nn.Module, source: int) -> dict | None:
    """``nn.Flatten()`` / ``nn.Unflatten(1, shape)`` as a per-sample reshape node; None for other modules."""
    if isinstance(m, nn.Flatten):
        if (m.start_dim, m.end_dim) != (1, -1):
            raise refuse(f"layer {name} flattens dimensions {m.start_dim}..{m.end_dim} (only from 1 keeps the batch)")
        return {"op": "reshape", "in": [source], "shape": [-1]}
    if isinstance(m, nn.Unflatten):
        if m.dim != 1 or not isinstance(m.unflattened_size, (tuple, list)):
            raise refuse(f"layer {name} unflattens dimension {m.dim} (only dimension 1 is supported)")
        return {"op": "reshape", "in": [source], "shape": [int(s) for s in m.unflattened_size]}
    return None


def regroup(w_in: int, w_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input channel, output channel) pairs a per-sample reshape from ``w_in`` to ``w_out`` channels
    connects (row-major: a channel splits into, or merges, whole consecutive channels); all to all
    when neither width divides the other."""
    if w_in == w_out:
        c = torch.arange(w_in)
        return c, c
    if w_out and w_in % w_out == 0:
        c = torch.arange(w_in)
        return c, c // (w_in // w_out)
    if w_in and w_out % w_in == 0:
        c = torch.arange(w_out)
        return c // (w_out // w_in), c
    a, b = torch.meshgrid(torch.arange(w_in), torch.arange(w_out), indexing="ij")
    return a.flatten(), b.flatten()


# ----------------------------------------------------------------------------- labels


@dataclass
class Inputs:
    """The latent and labels placeholders; nodes not emitted (the label branch and what feeds only it);
    the frontier, whose values become label tables."""

    z: fx.Node
    labels: fx.Node | None
    skip: set[fx.Node]
    frontier: list[fx.Node]


def _placeholders(traced: fx.Graph, num_classes: int | None) -> tuple[fx.Node, fx.Node | None]:
    holders = [n for n in traced.nodes if n.op == "placeholder"]
    if not holders:
        raise refuse("its forward takes no input")
    labels = holders[1] if num_classes and len(holders) > 1 else None
    if num_classes and (labels is None or not labels.users):
        raise refuse("it declares num_classes but its forward does not read a second input (the labels)")
    extra = [n.target for n in holders if n.users and n not in (holders[0], labels)]
    if extra:
        raise refuse(f"its forward reads more inputs ({', '.join(map(str, extra))}) than "
                     + ("the latent and the labels" if num_classes else "one (give num_classes for forward(z, labels))"))
    return holders[0], labels


def split_inputs(traced: fx.Graph, num_classes: int | None) -> Inputs:
    z, labels = _placeholders(traced, num_classes)
    zdep, ldep = {z}, {labels} if labels is not None else set()
    for n in traced.nodes:
        if n.op == "placeholder" or is_size(n):
            continue
        ins = n.all_input_nodes
        if any(i in zdep for i in ins):
            zdep.add(n)
        if any(i in ldep for i in ins):
            ldep.add(n)
    if labels is not None and any(u in zdep and not is_size(u) for u in labels.users):
        raise refuse("its labels are used directly by an operation on the latent (only a branch computed from "
                     "the labels alone, e.g. an embedding, can be kept as a table)")
    branch = ldep - zdep - {labels}
    skip = set(branch)
    for n in reversed(list(traced.nodes)):  # what feeds only the label branch (its weights, sizes of labels)
        if n.op not in ("placeholder", "output") and n not in zdep and n.users and all(u in skip for u in n.users):
            skip.add(n)
    frontier = [n for n in traced.nodes if n in branch and any(u not in skip and not is_size(u) for u in n.users)]
    return Inputs(z, labels, skip, frontier)


class _Reached(Exception):
    pass


def label_tables(model: nn.Module, traced: fx.Graph, frontier: list[fx.Node], input_shape: tuple[int, ...],
                 num_classes: int, dtype: torch.dtype) -> dict[fx.Node, torch.Tensor]:
    """The value of every frontier node for each class, ``(num_classes, ...)``: the traced forward run on the
    labels ``0..num_classes-1`` (in chunks, stopping at the last frontier node)."""
    if not frontier:
        return {}
    module = fx.GraphModule(model, traced)
    wanted = set(frontier)
    parts: dict[fx.Node, list[torch.Tensor]] = {n: [] for n in frontier}

    class Run(fx.Interpreter):
        def run_node(self, n: fx.Node):
            out = super().run_node(n)
            if n in wanted:
                got[n] = out
                if len(got) == len(wanted):
                    raise _Reached
            return out

    for chunk in torch.arange(num_classes).split(CHUNK):
        got: dict[fx.Node, object] = {}
        try:
            with torch.no_grad():
                Run(module).run(torch.zeros(len(chunk), *input_shape, dtype=dtype), chunk)
        except _Reached:
            pass
        except Exception as exc:  # noqa: BLE001 - the user's forward
            raise refuse(f"running its label branch failed ({type(exc).__name__}: {str(exc)[:160]})") from None
        for n in frontier:
            parts[n].append(_checked(n, got.get(n), len(chunk)))
    return {n: torch.cat(v) for n, v in parts.items()}


def _checked(n: fx.Node, value: object, batch: int) -> torch.Tensor:
    if not torch.is_tensor(value) or not value.is_floating_point() or value.dim() < 2 or value.shape[0] != batch:
        what = f"a {tuple(value.shape)} {value.dtype} tensor" if torch.is_tensor(value) else type(value).__name__
        raise refuse(f"what it computes from the labels ({n.name}) is {what}, not a float (batch, C, ...) tensor")
    return value.detach().clone()
