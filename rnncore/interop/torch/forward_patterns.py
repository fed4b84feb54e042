"""A subclassed module's ``forward``, recognised from its source without running it.

``forward``'s source (:func:`inspect.getsource`) is parsed with :mod:`ast` and read as a chain
of the module's own children; nothing of it is executed. It must be straight-line code taking one
input, each statement one of::

    x = self.emb(x)                          # any supported child, called on the previous value
    out, _ = self.rnn(x)                     # a recurrent child: out, h = ... / out, (h, c) = ...
    out = self.rnn(x)[0]
    out = self.drop(out)
    return self.fc(out[:, -1])               # the last step: out[:, -1], out[:, -1, :];
                                             #   out[-1] with batch_first=False
    return self.fc(out)                      # every step
    return self.fc(h[-1])                    # the final state, h_n[-1] (h, not c, of an LSTM)
    return self.fc(torch.cat((h[-2], h[-1]), dim=1))   # ... of a bidirectional module
    return self.fc(torch.cat([h[-2], h[-1]], dim=-1))
    x = self.act(x)                          # an activation child (nn.ReLU(), ...), may be called again
    x = torch.relu(x)                        # an activation function of torch or torch.nn.functional
    x = F.leaky_relu(x, 0.2)                 #   (F, nn.functional, torch.nn.functional), literal
    return F.softmax(self.fc(x), dim=-1)     #   arguments: read as the module of the same name

where each child is called once (one without weights may be called again), on the value the
previous call produced (a chain: no skip connections, no other operations). A child that is an
``nn.Sequential`` of non-recurrent modules is its modules in order. An activation function is the
``torch.nn`` module of :data:`FUNCTIONS` built with the call's arguments (so its settings are
checked as that module's are), named ``"<function>@<line>:<column>"``; ``F`` and the others are
looked up among the globals of ``forward``'s module (never called) and must be ``torch`` or
``torch.nn.functional`` themselves. Methods (``x.relu()``) are not read. Anything else is refused
naming the line, with the advice to pass ``arch=`` (see :mod:`~rnncore.interop.torch.arch`).

The result is ``[(name, child, output)]``: the children in the order the data flows, ``output``
the recurrent ones' (``"sequence"``, ``"last"`` or ``"final"``), None for the others.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["recognise", "PATTERNS", "FUNCTIONS"]

PATTERNS = (
    "Embedding? -> RNN/LSTM/GRU -> (Dropout | LayerNorm | Linear | an activation)* on output, output[:, -1] or "
    "h_n[-1] (torch.cat((h_n[-2], h_n[-1]), dim=1) when bidirectional); activations as modules or as "
    "torch.relu(x), F.relu(x), ..."
)

FUNCTIONS = {
    "relu": "ReLU",
    "relu6": "ReLU6",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "celu": "CELU",
    "selu": "SELU",
    "gelu": "GELU",
    "silu": "SiLU",
    "mish": "Mish",
    "softplus": "Softplus",
    "softsign": "Softsign",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "logsigmoid": "LogSigmoid",
    "hardsigmoid": "Hardsigmoid",
    "hardswish": "Hardswish",
    "hardtanh": "Hardtanh",
    "tanhshrink": "Tanhshrink",
    "softshrink": "Softshrink",
    "hardshrink": "Hardshrink",
    "softmax": "Softmax",
    "log_softmax": "LogSoftmax",
}
"""The activation functions read in a ``forward`` (``torch.<f>`` or ``torch.nn.functional.<f>``), by the
``torch.nn`` module each is: ``f(x, *args, **kwargs)`` is ``nn.<Module>(*args, **kwargs)(x)``."""

_LAST_BATCH_FIRST = (":, -1", ":, -1, :")
_LAST_TIME_MAJOR = ("-1", "-1, :", "-1, :, :")


def _index(node: ast.AST) -> str:
    """A subscript's index as written, without the parentheses :func:`ast.unparse` puts around a tuple."""
    text = ast.unparse(node)
    return text[1:-1] if isinstance(node, ast.Tuple) and text.startswith("(") else text


@dataclass
class _Val:
    """A value of the forward: ``what`` is ``tensor`` (``entry``: the child that made it, None for
    the input), ``result`` (a recurrent child's ``(output, h)``), ``output``, ``h`` (its
    ``h_n``), ``state`` (an LSTM's ``(h_n, c_n)``) or ``unused``."""

    what: str
    entry: Optional[int] = None
    sequence: bool = True


class _Refusal(Exception):
    pass


class _Reader:
    def __init__(self, module: Any, recurrent: tuple, sequential: type):
        self.module, self.recurrent, self.sequential = module, recurrent, sequential
        self.names = getattr(type(module).forward, "__globals__", {})
        self.entries: list = []  # [name, child, output]
        self.used: set = set()  # the names of the children called
        self.head: Optional[int] = None
        self.env: dict = {}

    def fail(self, node: ast.AST, why: str) -> _Refusal:
        return _Refusal(f"line {getattr(node, 'lineno', '?')} of forward: {ast.unparse(node)!r}: {why}")

    # --- values ---------------------------------------------------------------------------------

    def consume(self, val: _Val, node: ast.AST) -> _Val:
        """``val`` used as a module's input: a tensor at the head of the chain."""
        if val.what == "output":
            self.decide(val.entry, "sequence", node)
            return _Val("tensor", val.entry)
        if val.what != "tensor":
            raise self.fail(node, f"a recurrent module's {val.what} is not a tensor a module can take.")
        if val.entry != self.head:
            raise self.fail(node, "not the value the previous module produced (only a chain is recognised).")
        return val

    def decide(self, entry: Optional[int], output: str, node: ast.AST) -> None:
        if entry is None or entry != self.head:
            raise self.fail(node, "not the output of the previous module (only a chain is recognised).")
        if self.entries[entry][2] is not None:
            raise self.fail(node, "a recurrent module's results are used twice.")
        self.entries[entry][2] = output

    def call_child(self, node: ast.Call) -> _Val:
        name = node.func.attr  # type: ignore[attr-defined]
        child: Any = getattr(self.module, name, None)
        if child is None or name not in dict(self.module.named_children()):
            raise self.fail(node, f"self.{name} is not a child module.")
        if len(node.args) != 1 or node.keywords:
            raise self.fail(node, "a module must be called on one input, with no other arguments.")
        val = self.consume(self.expr(node.args[0]), node)
        if not val.sequence and isinstance(child, self.recurrent):
            raise self.fail(node, "a recurrent module on one step (it needs a sequence).")
        again = name in self.used
        if again and any(True for _ in child.parameters()):
            raise self.fail(node, f"self.{name} is called twice (shared weights).")
        self.used.add(name)
        in_sequential = type(child) is self.sequential
        parts = list(child.named_children()) if in_sequential else [("", child)]
        for sub, part in parts:
            if isinstance(part, self.recurrent) and in_sequential:
                raise self.fail(node, f"self.{name} is an nn.Sequential holding a recurrent module.")
            entry = f"{name}.{sub}" if sub else name
            self.entries.append([f"{entry}@{node.lineno}:{node.col_offset}" if again else entry, part, None])
        self.head = len(self.entries) - 1
        if isinstance(child, self.recurrent):
            return _Val("result", self.head)
        return _Val("tensor", self.head, val.sequence)

    def subscript(self, node: ast.Subscript) -> _Val:
        val, index = self.expr(node.value), _index(node.slice)
        if val.what == "result" and index in ("0", "1"):
            is_lstm = getattr(self.entries[val.entry][1], "mode", "") == "LSTM"  # type: ignore[index]
            return _Val("output" if index == "0" else ("state" if is_lstm else "h"), val.entry)
        if val.what == "state" and index == "0":
            return _Val("h", val.entry)
        if val.what == "output":
            batch_first = self.entries[val.entry][1].batch_first  # type: ignore[index]
            if index in (_LAST_BATCH_FIRST if batch_first else _LAST_TIME_MAJOR):
                self.decide(val.entry, "last", node)
                return _Val("tensor", val.entry, sequence=False)
        if val.what == "h" and index == "-1" and not self.entries[val.entry][1].bidirectional:  # type: ignore[index]
            self.decide(val.entry, "final", node)
            return _Val("tensor", val.entry, sequence=False)
        raise self.fail(node, "not one of the recognised selections.")

    def cat(self, node: ast.Call) -> _Val:
        """``torch.cat((h[-2], h[-1]), dim=1)``: a bidirectional module's final state."""
        dims = [k.value for k in node.keywords if k.arg == "dim"] + list(node.args[1:])
        others = [k for k in node.keywords if k.arg != "dim"]
        parts = node.args[0] if node.args else None
        if (
            isinstance(parts, (ast.Tuple, ast.List))
            and len(parts.elts) == 2
            and all(isinstance(e, ast.Subscript) for e in parts.elts)
            and len(dims) == 1
            and not others
            and ast.unparse(dims[0]) in ("1", "-1")
        ):
            subs = [e for e in parts.elts if isinstance(e, ast.Subscript)]
            vals = [self.expr(e.value) for e in subs]
            entry = vals[0].entry
            if (
                [_index(e.slice) for e in subs] == ["-2", "-1"]
                and all(v.what == "h" and v.entry == entry for v in vals)
                and entry is not None
                and self.entries[entry][1].bidirectional
            ):
                self.decide(entry, "final", node)
                return _Val("tensor", entry, sequence=False)
        raise self.fail(node, "not torch.cat((h_n[-2], h_n[-1]), dim=1) of a bidirectional module.")

    def namespace(self, node: ast.AST) -> Any:
        """The module object a dotted name (``F``, ``torch``, ``nn.functional``) is in forward's globals."""
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.namespace(node.value)
            if isinstance(owner, types.ModuleType):
                return getattr(owner, node.attr, None)
        return None

    def call_function(self, node: ast.Call, torch_class: str) -> _Val:
        """``F.relu(x, ...)``: ``nn.ReLU(...)`` on the value of ``x``."""
        from torch import nn

        if not node.args:
            raise self.fail(node, "an activation function must be called on the previous value.")
        val = self.consume(self.expr(node.args[0]), node)
        try:
            args = [ast.literal_eval(a) for a in node.args[1:]]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
        except ValueError:
            raise self.fail(node, "an activation function's arguments must be literals.") from None
        if len(kwargs) != len(node.keywords):
            raise self.fail(node, "an activation function's arguments must be literals.")
        try:
            child = getattr(nn, torch_class)(*args, **kwargs)
        except (TypeError, ValueError) as e:
            raise self.fail(node, f"its arguments are not those of nn.{torch_class} ({e}).") from None
        self.entries.append([f"{ast.unparse(node.func)}@{node.lineno}:{node.col_offset}", child, None])
        self.head = len(self.entries) - 1
        return _Val("tensor", self.head, val.sequence)

    def function(self, node: ast.Call) -> Optional[str]:
        """The ``torch.nn`` class of a call of one of :data:`FUNCTIONS` of torch or torch.nn.functional."""
        import torch

        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr not in FUNCTIONS:
            return None
        if self.namespace(func.value) not in (torch, torch.nn.functional):
            return None
        return FUNCTIONS[func.attr]

    def expr(self, node: ast.AST) -> _Val:
        if isinstance(node, ast.Name):
            if node.id not in self.env:
                raise self.fail(node, f"{node.id} is not a value of the forward.")
            val = self.env[node.id]
            if val.what == "unused":
                raise self.fail(node, f"{node.id} is not recognised (an LSTM's c_n?).")
            return val
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "self":
                return self.call_child(node)
            if isinstance(owner, ast.Name) and owner.id == "torch" and node.func.attr == "cat":
                return self.cat(node)
            torch_class = self.function(node)
            if torch_class is not None:
                return self.call_function(node, torch_class)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        raise self.fail(node, "not a recognised operation.")

    # --- statements -----------------------------------------------------------------------------

    def bind(self, target: ast.AST, val: _Val, node: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.env[target.id] = val
            return
        if isinstance(target, ast.Tuple) and len(target.elts) == 2:
            if val.what == "result":
                is_lstm = getattr(self.entries[val.entry][1], "mode", "") == "LSTM"  # type: ignore[index]
                self.bind(target.elts[0], _Val("output", val.entry), node)
                self.bind(target.elts[1], _Val("state" if is_lstm else "h", val.entry), node)
                return
            if val.what == "state":
                self.bind(target.elts[0], _Val("h", val.entry), node)
                self.bind(target.elts[1], _Val("unused", val.entry), node)
                return
        raise self.fail(node, "not a recognised assignment.")

    def read(self, fn: ast.FunctionDef) -> list:
        args = fn.args
        if len(args.args) != 2 or args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
            raise _Refusal("forward must take exactly one input (forward(self, x)).")
        self.env[args.args[1].arg] = _Val("tensor", None)
        body = list(fn.body)
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            body = body[1:]  # the docstring
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                self.bind(stmt.targets[0], self.expr(stmt.value), stmt)
            elif isinstance(stmt, ast.Return) and stmt.value is not None and i == len(body) - 1:
                val = self.expr(stmt.value)
                if val.what == "output":
                    self.decide(val.entry, "sequence", stmt)
                elif val.what != "tensor" or val.entry != self.head or val.entry is None:
                    raise self.fail(stmt, "returns something other than the last module's output.")
                return self.entries
            else:
                raise self.fail(stmt, "not a recognised statement (assignments and one final return only).")
        raise _Refusal("forward has no final return statement.")


def recognise(module: Any, recurrent: tuple, sequential: type) -> list:
    """``[(name, child, output)]`` read off ``type(module).forward``'s source (see the module
    docstring); a ``ValueError`` naming what is not recognised otherwise.

    ``recurrent``: the recurrent module classes (``nn.RNN, nn.LSTM, nn.GRU``); ``sequential``:
    ``nn.Sequential``.
    """
    cls = type(module).__name__
    advice = f"recognised: {PATTERNS}; otherwise pass arch= (a list of layer specs, see rnncore.interop.torch.arch)."
    try:
        source = textwrap.dedent(inspect.getsource(type(module).forward))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError) as e:
        raise ValueError(f"{cls}.forward: its source cannot be read ({e}); {advice}") from None
    fn = tree.body[0] if tree.body else None
    if not isinstance(fn, ast.FunctionDef) or fn.decorator_list:
        raise ValueError(f"{cls}.forward is not a plain function; {advice}")
    reader = _Reader(module, recurrent, sequential)
    try:
        entries = reader.read(fn)
    except _Refusal as e:
        raise ValueError(f"{cls}: {str(e).rstrip('.')}; {advice}") from None
    for name, child in module.named_children():
        if name not in reader.used and any(True for _ in child.parameters()):
            raise ValueError(f"{cls}: self.{name} holds weights but forward does not use it; {advice}")
    for name, child, output in entries:
        if isinstance(child, recurrent) and output is None:
            raise ValueError(f"{cls}: the results of self.{name} are never used; {advice}")
    return [tuple(e) for e in entries]
