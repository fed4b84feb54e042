"""``Model``: a graph of layer calls, Keras's functional model.

A :class:`Model` names its inputs, then lists its :class:`Call`\\ s in the order they run: each call
applies one layer to named tensors and names what it returns. Several inputs and outputs, a layer
called more than once (its params shared), a merge layer taking a list of tensors, a recurrent
layer's returned state wired into another's ``initial_state``: the graphs of
``keras.Model(inputs, outputs)`` are all of this form, and :func:`rnncore.from_keras` turns one into
a ``Model``. Masks flow along the graph as Keras propagates them: a call without an explicit
``mask`` gets the mask its (first) input carries, and passes on the layer's ``compute_mask``;
a recurrent layer's returned states carry none.

Params are a tuple with one entry per distinct layer (``model.layers``, named ``model.names``), in
the order the calls first use them; :meth:`Model.run` records what every recurrent layer consumed,
as :meth:`rnncore.Sequential.run` does, so the analyses of :mod:`rnncore.depth` and
:mod:`rnncore.analysis` run on a graph too. A recurrent layer called more than once (a shared,
siamese encoder) consumed something different in each call; the analyses read the graph through
:meth:`Model.per_call`, the same graph with one layer per recurrent call (the calls' params the
same arrays), so that every call is a row of its own.

Example (an encoder-decoder: the encoder's final ``(h, c)`` starts the decoder):
    >>> import jax, jax.numpy as jnp
    >>> import rnncore as rc
    >>> model = rc.Model(
    ...     inputs={"source": (None, 5), "target": (None, 4)},
    ...     calls=[
    ...         rc.Call("encoder", rc.layers.LSTM(7, return_state=True), "source", outputs=("_", "h", "c")),
    ...         rc.Call("decoder", rc.layers.LSTM(7, return_sequences=True), "target",
    ...                 initial_state=("h", "c"), outputs="decoded"),
    ...         rc.Call("head", rc.layers.Dense(4), "decoded", outputs="y"),
    ...     ],
    ...     outputs="y")
    >>> params = model.init(jax.random.PRNGKey(0))
    >>> model.apply(params, (jnp.ones((2, 9, 5)), jnp.ones((2, 6, 4)))).shape
    (2, 6, 4)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from . import layers as L
from .models import ModelRun

__all__ = ["Input", "Call", "Op", "Model", "PerCall", "OPS"]


class Input(NamedTuple):
    """A model input: its shape without the batch (sizes may be None) and dtype (``"int32"`` for
    token ids)."""

    shape: tuple
    dtype: str = "float32"


# Elementwise and reducing operations a Keras graph records between layers (the masks Keras
# makes, e.g. ``not_equal(tokens, 0)`` after an ``Embedding(mask_zero=True)``).
OPS = {
    "not_equal": jnp.not_equal,
    "equal": jnp.equal,
    "greater": jnp.greater,
    "less": jnp.less,
    "logical_and": jnp.logical_and,
    "logical_or": jnp.logical_or,
    "logical_not": jnp.logical_not,
    "any": jnp.any,
    "all": jnp.all,
    "expand_dims": jnp.expand_dims,
    "squeeze": jnp.squeeze,
    "zeros_like": jnp.zeros_like,
    "ones_like": jnp.ones_like,
    "concatenate": jnp.concatenate,
    "cast": lambda x, dtype: jnp.asarray(x).astype(dtype),
}


@dataclass(frozen=True)
class Op:
    """One of :data:`OPS` as a weightless layer: ``apply(params, x)`` is ``OPS[name](*x, *constants,
    **options)`` where ``x`` is one tensor or a list of them (``OPS[name](x, ...)`` with
    ``list_input``, e.g. ``concatenate``) (e.g. ``Op("not_equal", (0,))`` on token ids is Keras's
    ``mask_zero`` mask; ``Op("any", options=(("axis", -1),))``)."""

    name: str
    constants: tuple = ()
    options: tuple = ()  # (key, value) pairs, hashable
    list_input: bool = False

    supports_masking = False

    def __post_init__(self):
        if self.name not in OPS:
            raise ValueError(f"Op name={self.name!r}; expected one of {', '.join(OPS)}.")

    def init(self, key, input_shape, dtype=jnp.float32):
        return ()

    def compute_mask(self, x, mask):
        return None

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in (input_shape if isinstance(input_shape, list) else [input_shape])]
        dummies = [np.zeros([1 if d is None else d for d in s], bool) for s in shapes]
        out = jax.eval_shape(lambda *a: self.apply((), list(a)), *dummies).shape
        return tuple(None if (i < len(shapes[0]) and shapes[0][i] is None) else d for i, d in enumerate(out))

    def apply(self, params, x, mask=None, training=False, rng=None):
        args = [jnp.asarray(a) for a in (list(x) if isinstance(x, (list, tuple)) else [x])]
        if self.list_input:
            return OPS[self.name](args, *self.constants, **dict(self.options))
        return OPS[self.name](*args, *self.constants, **dict(self.options))


Refs = Union[str, Sequence[str]]


class Call(NamedTuple):
    """One layer call of a :class:`Model`.

    ``name``: the layer's name (calls with the same name share the layer and its params: give the
    layer once, ``None`` in the later calls); ``layer``: an rnncore layer (or :class:`Op`);
    ``inputs``: the name of the tensor it is applied to, or a list of names (a merge layer);
    ``outputs``: the name of what it returns, or one name per returned array (a recurrent layer
    with ``return_state``: output, then the state arrays); ``initial_state``: names of the state
    arrays a recurrent layer starts from (Keras's ``initial_state=[h, c]``); ``mask``: the name of
    an explicit mask tensor, or for a layer of several inputs a name (or None) per input (else the
    masks its inputs carry).
    """

    name: str
    layer: Any
    inputs: Refs
    outputs: Refs
    initial_state: Optional[tuple] = None
    mask: Optional[Refs] = None


def _names(refs: Refs) -> tuple:
    return (refs,) if isinstance(refs, str) else tuple(refs)


def _check_call(i: int, call: Any, layers_by_name: dict, known: set) -> tuple:
    at = f"calls[{i}]"
    if not isinstance(call, Call):
        raise ValueError(f"{at} must be an rnncore.Call; got {type(call).__name__}.")
    if not isinstance(call.name, str) or not call.name:
        raise ValueError(f"{at}.name={call.name!r}; expected a non-empty string.")
    earlier = layers_by_name.get(call.name)
    layer = call.layer if call.layer is not None else earlier
    if layer is None:
        raise ValueError(f"{at} ({call.name!r}) gives no layer and no earlier call names one.")
    if earlier is not None and layer != earlier:
        raise ValueError(f"{at}: the name {call.name!r} is already another layer's; give a shared layer once.")
    if not all(hasattr(layer, m) for m in ("init", "apply", "compute_mask", "compute_output_shape")):
        raise ValueError(f"{at} ({call.name!r}, {type(layer).__name__}) is not an rnncore layer.")
    masks = () if call.mask is None else tuple(m for m in _names(call.mask) if m is not None)
    refs = _names(call.inputs) + tuple(call.initial_state or ()) + masks
    for r in refs:
        if r not in known:
            raise ValueError(f"{at} ({call.name!r}) uses the tensor {r!r}, which no input or earlier call makes.")
    outs = _names(call.outputs)
    for o in outs:
        if o in known:
            raise ValueError(f"{at} ({call.name!r}) names its output {o!r}, a name already taken.")
    if call.initial_state is not None and not L.is_recurrent(layer):
        raise ValueError(f"{at} ({call.name!r}, {type(layer).__name__}) takes no initial_state: not recurrent.")
    n = _output_count(layer)
    if len(outs) != n:
        raise ValueError(f"{at} ({call.name!r}, {type(layer).__name__}) returns {n} arrays; it names {len(outs)}.")
    return layer, outs


def _output_count(layer: Any) -> int:
    if L.is_bidirectional(layer):
        n = 1 if layer.merge_mode is not None else 2
        if layer.return_state:
            n += len(layer.forward_layer.cell.state_type._fields) + len(layer.backward_layer.cell.state_type._fields)
        return n
    if L.is_recurrent(layer) and layer.return_state:
        return 1 + len(layer.cell.state_type._fields)
    return 1


@dataclass(frozen=True, init=False)
class Model:
    """Keras ``Model(inputs, outputs)``: a graph of :class:`Call`\\ s (see the module docstring).

    Args:
        inputs: ``{name: shape}`` (shape without the batch, float32) or ``{name: Input(shape,
            dtype)}``, in the order :meth:`apply` takes them.
        calls: the :class:`Call`\\ s, each using only inputs and earlier calls' outputs.
        outputs: the name of the model's output, or a list of names (then :meth:`apply` returns a
            tuple).
    """

    input_names: tuple
    input_specs: tuple
    calls: tuple
    output_names: tuple
    single_output: bool
    layers: tuple
    names: tuple

    def __init__(self, inputs: dict, calls: Sequence[Call], outputs: Refs):
        if not isinstance(inputs, dict) or not inputs:
            raise ValueError(f"inputs must be a non-empty dict {{name: shape}}; got {type(inputs).__name__}.")
        specs = []
        for name, spec in inputs.items():
            spec = spec if isinstance(spec, Input) else Input(tuple(spec))
            if not spec.shape or not all(d is None or (isinstance(d, int) and d > 0) for d in spec.shape):
                raise ValueError(f"inputs[{name!r}] has shape {spec.shape}; expected sizes that are positive or None.")
            specs.append(Input(tuple(spec.shape), str(spec.dtype)))
        known = set(inputs)
        layers_by_name: dict = {}
        checked = []
        for i, call in enumerate(calls):
            layer, outs = _check_call(i, call, layers_by_name, known)
            layers_by_name.setdefault(call.name, layer)
            known.update(outs)
            checked.append(
                call._replace(
                    layer=layer,
                    inputs=call.inputs if isinstance(call.inputs, str) else tuple(call.inputs),
                    outputs=outs,
                    initial_state=None if call.initial_state is None else tuple(call.initial_state),
                )
            )
        if not checked:
            raise ValueError("calls is empty; a Model needs at least one call.")
        out_names = _names(outputs)
        for o in out_names:
            if o not in known:
                raise ValueError(f"outputs names {o!r}, which no input or call makes.")
        object.__setattr__(self, "input_names", tuple(inputs))
        object.__setattr__(self, "input_specs", tuple(specs))
        object.__setattr__(self, "calls", tuple(checked))
        object.__setattr__(self, "output_names", out_names)
        object.__setattr__(self, "single_output", isinstance(outputs, str))
        object.__setattr__(self, "layers", tuple(layers_by_name.values()))
        object.__setattr__(self, "names", tuple(layers_by_name))

    # --- params ---------------------------------------------------------------------------------

    def _shapes(self) -> dict:
        shapes = {n: s.shape for n, s in zip(self.input_names, self.input_specs)}
        for call in self.calls:
            ins = call.inputs
            in_shape = shapes[ins] if isinstance(ins, str) else [shapes[n] for n in ins]
            out = call.layer.compute_output_shape(in_shape)
            outs = call.outputs
            extra = [tuple(out)] if L.is_bidirectional(call.layer) and call.layer.merge_mode is None else []
            for o, s in zip(outs, [tuple(out)] + extra + _state_shapes(call.layer)):
                shapes[o] = s
        return shapes

    def input_shapes(self) -> tuple:
        """Per layer of ``model.layers``: the input shape (without the batch) of its first call."""
        shapes = self._shapes()
        first: dict = {}
        for call in self.calls:
            if call.name not in first:
                ins = call.inputs
                first[call.name] = shapes[ins] if isinstance(ins, str) else [shapes[n] for n in ins]
        return tuple(first[n] for n in self.names)

    def init(self, key: jax.Array, dtype=jnp.float32) -> tuple:
        """One params entry per layer of ``model.layers``, for the declared input shapes."""
        keys = jax.random.split(key, len(self.layers))
        return tuple(layer.init(k, shape, dtype) for layer, k, shape in zip(self.layers, keys, self.input_shapes()))

    def check_params(self, params: Any) -> None:
        """Raise a ``ValueError`` unless ``params`` has one entry per layer of ``model.layers``."""
        if not isinstance(params, (tuple, list)) or len(params) != len(self.layers):
            n = len(params) if isinstance(params, (tuple, list)) else type(params).__name__
            raise ValueError(
                f"params must be a tuple with one entry per layer ({len(self.layers)}: {', '.join(self.names)}); "
                f"got {n}."
            )

    def per_call(self) -> PerCall:
        """This graph as the analyses read it: one layer per call of a recurrent layer.

        A recurrent layer called n > 1 times becomes n layers, named ``"name (call k)"`` for its
        k-th call in the order of :attr:`calls` (k = 1 … n), each the same layer object, their params
        the same arrays (:meth:`PerCall.params`); every other layer, a shared ``Dense`` or merge
        included, is kept as it is. The split graph computes exactly what this one does (the same
        calls in the same order, the same dropout keys), and each of its recurrent layers is called
        once, so :meth:`run` records what every call consumed and takes a tap per call. A graph
        whose recurrent layers are each called once is its own view (``origins`` the identity).

        Example (one LSTM reading two sequences, a siamese encoder):
            >>> import jax, jax.numpy as jnp
            >>> import rnncore as rc
            >>> model = rc.Model(
            ...     inputs={"a": (None, 3), "b": (None, 3)},
            ...     calls=[rc.Call("shared", rc.layers.LSTM(4), "a", outputs="ha"),
            ...            rc.Call("shared", None, "b", outputs="hb"),
            ...            rc.Call("diff", rc.layers.Subtract(), ["ha", "hb"], outputs="y")],
            ...     outputs="y")
            >>> view = model.per_call()
            >>> view.model.names, view.origins
            (('shared (call 1)', 'shared (call 2)', 'diff'), (0, 0, 1))
            >>> params = model.init(jax.random.PRNGKey(0))
            >>> x = (jnp.ones((2, 5, 3)), jnp.zeros((2, 7, 3)))
            >>> bool(jnp.array_equal(view.model.apply(view.params(params), x), model.apply(params, x)))
            True
        """
        return _per_call(self)

    # --- the forward ----------------------------------------------------------------------------

    def _inputs(self, x: Any, what: str = "x") -> tuple:
        n = len(self.input_names)
        if isinstance(x, dict):
            missing = [k for k in self.input_names if k not in x]
            if missing:
                raise ValueError(f"{what} is missing the inputs {missing}; the model takes {list(self.input_names)}.")
            x = tuple(x[k] for k in self.input_names)
        elif n == 1 and not isinstance(x, (tuple, list)):
            x = (x,)
        if not isinstance(x, (tuple, list)) or len(x) != n:
            got = len(x) if isinstance(x, (tuple, list)) else type(x).__name__
            raise ValueError(f"{what} must hold one array per input ({list(self.input_names)}); got {got}.")
        return tuple(x)

    def apply(self, params, x, mask=None, training: bool = False, rng=None, initial_states=None):
        """The outputs for ``x`` (one array, or one per input as a tuple or a dict by name)."""
        return self.run(params, x, mask, training, rng, initial_states=initial_states).output

    def apply_with_mask(self, params, x, mask=None, training=False, rng=None, initial_states=None):
        """``(y, final_states, output_mask)``, as :meth:`rnncore.Sequential.apply_with_mask`."""
        run = self.run(params, x, mask, training, rng, initial_states=initial_states)
        return run.output, run.final_states, run.output_mask

    def run(
        self,
        params,
        x,
        mask=None,
        training: bool = False,
        rng: Optional[jax.Array] = None,
        *,
        initial_states: Optional[Sequence[Any]] = None,
        taps: Optional[Sequence[Any]] = None,
    ) -> ModelRun:
        """The forward, call by call, recording what each recurrent layer consumed: a
        :class:`~rnncore.models.ModelRun` whose ``consumed`` and ``input_masks`` have one entry per
        layer of ``model.layers`` (see :meth:`rnncore.Sequential.run`; ``initial_states`` and
        ``taps`` likewise, one entry per layer, an initial state given here replacing the one the
        graph wires in, in every call of its layer). A recurrent layer called more than once has no
        single consumption: its ``consumed`` entry (and final state) is None, its ``input_masks``
        entry its first call's, and it takes no tap; :meth:`per_call` splits it into one layer per
        call, each recorded."""
        return self._forward(params, x, mask, training, rng, initial_states, taps, update=False)[0]

    def apply_and_update(self, params, x, mask=None, rng=None, initial_states=None):
        """``(y, final_states, output_mask, params')``: the training forward and the params with the
        moving statistics Keras assigns after it, as :meth:`rnncore.Sequential.apply_and_update`; a
        layer called more than once is assigned once per call, in call order, as in Keras."""
        run, updated = self._forward(params, x, mask, True, rng, initial_states, None, update=True)
        return run.output, run.final_states, run.output_mask, updated

    def _forward(self, params, x, mask, training, rng, initial_states, taps, update: bool):
        """``(ModelRun, params')``; ``params'`` carries the updated moving statistics when ``update``."""
        self.check_params(params)
        xs = self._inputs(x)
        masks = (None,) * len(xs) if mask is None else self._inputs(mask, "mask")
        n = len(self.layers)
        for what, given in (("initial_states", initial_states), ("taps", taps)):
            if given is not None and len(given) != n:
                raise ValueError(f"{what} must have one entry per layer ({n}); got {len(given)}.")
        index = {name: i for i, name in enumerate(self.names)}
        values: dict = {}
        carried: dict = {}
        for name, spec, a, m in zip(self.input_names, self.input_specs, xs, masks):
            a = L.check_inputs(a, f"x[{name!r}]")
            values[name], carried[name] = a, None if m is None else L.check_mask(m, a, f"mask[{name!r}]")
        keys = [None] * len(self.calls) if rng is None else list(jax.random.split(rng, len(self.calls)))
        calls_of = {nm: sum(c.name == nm for c in self.calls) for nm in self.names}
        consumed: list = [None] * n
        masks_in: list = [None] * n
        updated = list(params)
        seen: set = set()
        for call, key in zip(self.calls, keys):
            i = index[call.name]
            ins = call.inputs
            h = values[ins] if isinstance(ins, str) else [values[r] for r in ins]
            if call.mask is not None:
                m = values[call.mask] if isinstance(call.mask, str) else [values.get(r) for r in call.mask]
            else:
                m = carried[ins] if isinstance(ins, str) else [carried[r] for r in ins]
                if isinstance(m, list) and all(v is None for v in m):
                    m = None
            if i not in seen:
                masks_in[i] = m
            layer, p = call.layer, params[i]
            if L.is_recurrent(layer):
                tap = None if taps is None else taps[i]
                if tap is not None and calls_of[call.name] > 1:
                    raise ValueError(
                        f"taps[{i}]: layer {call.name!r} is called {calls_of[call.name]} times; a tap follows a "
                        "recurrent layer called once: run model.per_call().model, one layer per call."
                    )
                s0 = self._initial_state(call, values, initial_states, i)
                out, final, c = layer.run(p, h, m, training, key, s0, tap=tap)
                out = out if isinstance(out, tuple) else (out,)
                if layer.return_state:
                    flat = tuple(final) if isinstance(layer, L.RNN) else tuple(final[0]) + tuple(final[1])
                    out = out + flat
                if calls_of[call.name] == 1:
                    consumed[i] = c
            elif update and L.has_moving_statistics(layer):
                y, updated[i] = layer.apply_and_update(updated[i], h, m)
                out = (y,)
            else:
                out = (layer.apply(p, h, m, training, key),)
            out_mask = layer.compute_mask(h, m)
            # Keras: the output sequence(s) carry the mask; returned states carry none
            n_masked = 2 if L.is_bidirectional(layer) and layer.merge_mode is None else 1
            for k, (o, v) in enumerate(zip(call.outputs, out)):
                values[o], carried[o] = v, out_mask if k < n_masked else None
            seen.add(i)
        outs = tuple(values[o] for o in self.output_names)
        out_masks = tuple(carried[o] for o in self.output_names)
        if self.single_output:
            return ModelRun(outs[0], tuple(consumed), tuple(masks_in), out_masks[0]), tuple(updated)
        return ModelRun(outs, tuple(consumed), tuple(masks_in), out_masks), tuple(updated)

    def _initial_state(self, call: Call, values: dict, initial_states: Optional[Sequence[Any]], i: int) -> Any:
        if initial_states is not None and initial_states[i] is not None:
            return initial_states[i]
        if call.initial_state is None:
            return None
        parts = [values[r] for r in call.initial_state]
        if L.is_bidirectional(call.layer):
            fwd, bwd = L.split_bidirectional_state(parts)
            return (tuple(fwd), tuple(bwd))
        return tuple(parts)


def _state_shapes(layer: Any) -> list:
    """The shapes (without the batch) of the state arrays a recurrent layer returns after its output."""
    if not L.is_recurrent(layer):
        return []
    subs: tuple = (layer.forward_layer, layer.backward_layer) if L.is_bidirectional(layer) else (layer,)
    out: list = []
    for sub in subs:
        probe = sub.cell.initial_state(1)
        out += [tuple(np.shape(s)[1:]) for s in probe]
    return out


class PerCall(NamedTuple):
    """A graph with one layer per recurrent call (:meth:`Model.per_call`): ``model``, the split
    graph; ``origins``, per layer of ``model.layers`` the index of the layer of the original graph
    it is."""

    model: Model
    origins: tuple

    def params(self, params: Sequence[Any]) -> tuple:
        """The split graph's params from the original's: each call's entry is its layer's params."""
        return tuple(params[i] for i in self.origins)

    def per_layer(self, entries: Optional[Sequence[Any]]) -> Optional[tuple]:
        """``initial_states`` (or any one-entry-per-layer argument) of the original graph for the
        split one: each call gets its layer's entry (None stays None)."""
        return None if entries is None else tuple(entries[i] for i in self.origins)


def _per_call(model: Model) -> PerCall:
    counts: dict = {}
    for call in model.calls:
        counts[call.name] = counts.get(call.name, 0) + 1
    split = {n for n, k in counts.items() if k > 1 and L.is_recurrent(model.layers[model.names.index(n)])}
    if not split:
        return PerCall(model, tuple(range(len(model.layers))))
    seen: dict = {}
    calls: list = []
    origin_of: dict = {}
    for call in model.calls:
        origin = model.names.index(call.name)
        if call.name in split:
            seen[call.name] = seen.get(call.name, 0) + 1
            call = call._replace(name=f"{call.name} (call {seen[call.name]})", layer=model.layers[origin])
        origin_of.setdefault(call.name, origin)
        calls.append(call)
    inputs = dict(zip(model.input_names, model.input_specs))
    outputs: Refs = model.output_names[0] if model.single_output else list(model.output_names)
    view = Model(inputs, calls, outputs)
    return PerCall(view, tuple(origin_of[n] for n in view.names))
