"""``rnncore.bptt`` against oracles that share none of its code.

The oracle for the time loop is :func:`run_loop`: Keras's loop written out here as a Python loop
of ``cell.step`` (masking, ``go_backwards``, ``zero_output_for_mask``, ``unroll``, dropout masks,
plus the two instruments the tests need: a stop-gradient on the state every k2 steps and an
additive perturbation of each state). Against it:

* the explicit reverse scan (:func:`bptt.backward`) equals ``jax.grad`` of the loop and central
  finite differences (float64), for every cell and every flag, also through stacked ``Sequential``
  models and ``Bidirectional``, where the layers' default VJP is the explicit one;
* ``Gradients.states[:, t-1]`` equals ``jax.grad`` w.r.t. a perturbation added to ``s_t``;
* float32 gradients equal Keras's (``jax.grad`` through ``stateless_call``) to 1e-5;
* truncated BPTT equals the loop with ``jax.lax.stop_gradient`` on ``s_k2, s_2k2, ...``;
* ``step_jacobians`` equals ``jax.jacfwd`` of one written-out step, the products equal
  ``jax.jacrev`` of the loop run from ``s_k`` (or ``s_0``);
* over T=1000 the float32 product underflows to exactly 0 while the log-domain norms stay finite
  and equal a float64 rescaled product and the closed form of a linear RNN;
* the matrix-free top singular values equal the SVD of the product formed by ``jax.jacrev``.
"""

import dataclasses
import functools
import re
from typing import NamedTuple

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err, random_like
from covering import diagonal, only, sweep
from test_layers import _cotangent, fast_jit, inject_dropout_masks, keras_cell, keras_run, randomize

import rnncore as rc
from rnncore import bptt

# Keras reads weights with np.array(variable), which NumPy 2 reports once per weight.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

U, F, T, B = 3, 2, 6, 4
CELL_KINDS = ("SimpleRNN", "LSTM", "GRU", "GRU_v1", "LayerNormLSTM")  # GRU_v1: reset_after=False


def make_cell(kind, units=U, **kw):
    if kind == "GRU_v1":
        return rc.cells.GRU(units, reset_after=False, **kw)
    return getattr(rc.cells, kind)(units, **kw)


# --- the state vector, written here ----------------------------------------------------------------


def to_vec(state):
    """``s_t`` = the state's arrays concatenated (LSTM: ``h`` then ``c``)."""
    return jnp.concatenate(list(state), axis=-1)


def from_vec(cell, vec):
    fields = cell.state_type._fields
    return cell.state_type(*jnp.split(vec, len(fields), axis=-1))


def state_size(cell):
    return cell.units * len(cell.state_type._fields)


def diag_blocks(full):
    """``(B, S, B, S)`` Jacobian of a batched map -> the per-row ``(B, S, S)`` blocks."""
    rows = jnp.arange(full.shape[0])
    return full[rows, :, rows, :]


# --- the oracle: Keras's time loop written out -----------------------------------------------------


def run_loop(
    cell,
    params,
    xs,
    s0,
    mask=None,
    *,
    dropout_masks=None,
    go_backwards=False,
    zero_output_for_mask=False,
    unroll=False,
    truncate=None,
    eps=None,
    keras_unroll=False,
    start=0,
    stop=None,
):
    """Outputs ``(B, n, u)`` and states ``[s_start .. s_stop]``, in processing order.

    A masked step keeps the state and outputs ``h`` of the state it kept (scan path), zeros with
    ``zero_output_for_mask``, or with ``unroll`` zeros until a real step has been seen (Keras's
    unrolled loop ignores ``zero_output_for_mask``). ``keras_unroll=True`` writes the unrolled
    loop literally as Keras does: a masked step repeats the previous *output* (zeros at the first
    step). ``truncate=k2``: ``s_t`` goes through ``stop_gradient`` before the step that consumes
    it when t is a positive multiple of k2. ``eps (B, T, S)``: ``eps[:, t-1]`` is added to ``s_t``
    (before any stop-gradient), so ``d loss/d eps[:, t-1] = d loss/d s_t``. ``start, stop``: run
    the steps ``start+1 .. stop`` only, from ``s0`` = ``s_start``.
    """
    steps = xs.shape[1]
    stop = steps if stop is None else stop
    order = list(range(steps))[::-1] if go_backwards else list(range(steps))
    if mask is not None:
        seen = jnp.zeros(xs.shape[0], bool)
        for i in order[:start]:
            seen = seen | mask[:, i]
    state, prev_out, ys, states = s0, None, [], [s0]
    for t in range(start + 1, stop + 1):  # step t consumes s_{t-1} and x in processing position t-1
        i = order[t - 1]
        if truncate is not None and t - 1 > 0 and (t - 1) % truncate == 0:
            state = jax.tree_util.tree_map(jax.lax.stop_gradient, state)
        new, y = cell.step(params, state, xs[:, i], dropout_masks)
        if mask is not None:
            m = mask[:, i][:, None]
            if unroll and keras_unroll:
                fallback = jnp.zeros_like(y) if prev_out is None else prev_out
            elif unroll:
                fallback = jnp.where(seen[:, None], state[0], 0.0)
            elif zero_output_for_mask:
                fallback = jnp.zeros_like(y)
            else:
                fallback = state[0]
            y = jnp.where(m, y, fallback)
            new = type(new)(*(jnp.where(m, a, b) for a, b in zip(new, state)))
            seen = seen | mask[:, i]
        if eps is not None:
            new = from_vec(cell, to_vec(new) + eps[:, t - 1])
        state, prev_out = new, y
        ys.append(y)
        states.append(state)
    return jnp.stack(ys, axis=1), states


def loop_loss(cell, params, xs, s0, eps, dys, d_final, mask, flags, **kw):
    """``L = Σ_t <y_t, dys_t> + <s_T, d_final>`` through :func:`run_loop`."""
    ys, states = run_loop(cell, params, xs, s0, mask, eps=eps, **flags, **kw)
    return jnp.sum(ys * dys) + jnp.sum(to_vec(states[-1]) * d_final)


# --- random data --------------------------------------------------------------------------------


def random_params(cell, rng, input_dim=F, scale=0.6, dtype=np.float64):
    """Every params array replaced by random, asymmetric values (default init has zero biases)."""
    shapes = jax.eval_shape(lambda k: cell.init(k, input_dim), jax.random.PRNGKey(0))
    return type(shapes)(*(None if a is None else jnp.asarray(rng.normal(size=a.shape) * scale, dtype) for a in shapes))


def random_state(cell, rng, batch=B, scale=0.5, dtype=np.float64):
    return cell.state_type(
        *(jnp.asarray(rng.normal(size=(batch, cell.units)) * scale, dtype) for _ in cell.state_type._fields)
    )


# ``(B, T)`` masks, True where a step is real. Every one has a row whose first step in processing
# order (either direction) is masked, which the tests give a non-zero initial state; "post" and
# "pre" have a fully masked row and rows of lengths T, T/2 and 1.
HOLES = [[0, 1, 1, 0, 1, 1, 0], [1, 0, 1, 1, 0, 1, 1], [0, 0, 1, 0, 0, 1, 0], [1, 1, 0, 1, 1, 1, 0]]


def make_mask(name, steps=T):
    if name is None:
        return None
    t = np.arange(steps)[None]
    if name in ("post", "pre"):
        lengths = np.array([steps, steps // 2, 1, 0])[:, None]
        m = t < lengths if name == "post" else t >= steps - lengths
    elif name == "holes":
        m = np.asarray([np.resize(row, steps) for row in HOLES], bool)
        m[0, [0, -1]] = False
    else:
        raise ValueError(name)
    return jnp.asarray(m)


def processing(a, go_backwards):
    """``(B, T, ...)`` in processing order."""
    return a[:, ::-1] if go_backwards else a


class Case(NamedTuple):
    """One float64 problem: a cell, its params, inputs, initial state, mask, dropout masks, flags
    and the cotangents of the loss."""

    cell: object
    params: object
    xs: jax.Array
    s0: object  # None: zeros (``initial_state=None``)
    mask: object
    dmasks: object
    flags: dict
    dys: jax.Array  # (B, T, u), processing order
    d_final: jax.Array  # (B, S)


def make_case(kind, seed, mask=None, init=True, dropout=0.0, recurrent_dropout=0.0, steps=T, **flags):
    rng = np.random.default_rng(seed)
    cell = make_cell(kind, dropout=dropout, recurrent_dropout=recurrent_dropout)
    params = random_params(cell, rng)
    xs = jnp.asarray(rng.normal(size=(B, steps, F)))
    s0 = random_state(cell, rng) if init else None
    dmasks = None
    if dropout or recurrent_dropout:
        dmasks = cell.dropout_masks(jax.random.PRNGKey(seed), B, F, jnp.float64)
    full = dict(go_backwards=False, zero_output_for_mask=False, unroll=False)
    full.update(flags)
    dys = jnp.asarray(rng.normal(size=(B, steps, cell.units)))
    d_final = jnp.asarray(rng.normal(size=(B, state_size(cell))))
    return Case(cell, params, xs, s0, make_mask(mask, steps), dmasks, full, dys, d_final)


def zeros_state(cell, dtype=jnp.float64):
    return cell.state_type(*([jnp.zeros((B, cell.units), dtype)] * len(cell.state_type._fields)))


def explicit_backward(case, truncate=None):
    """``bptt.backward`` on ``case`` (jitted, one compilation)."""
    c = case

    @fast_jit
    def run(params, xs, s0, dys, d_final):
        return bptt.backward(
            c.cell,
            params,
            xs,
            dys,
            s0,
            c.mask,
            d_final_state=from_vec(c.cell, d_final),
            dropout_masks=c.dmasks,
            truncate_gradient=truncate,
            **c.flags,
        )

    return run(c.params, c.xs, c.s0, c.dys, c.d_final)


def reference_grads(case, truncate=None, keras_unroll=False):
    """``jax.grad`` of the loop loss w.r.t. ``(params, xs, s0, eps)`` at ``eps = 0``."""
    c = case
    s0 = zeros_state(c.cell) if c.s0 is None else c.s0
    eps = jnp.zeros((B, c.xs.shape[1], state_size(c.cell)))

    @fast_jit
    def grads(params, xs, s0, eps):
        return jax.grad(
            lambda *a: loop_loss(
                c.cell,
                *a,
                c.dys,
                c.d_final,
                c.mask,
                c.flags,
                dropout_masks=c.dmasks,
                truncate=truncate,
                keras_unroll=keras_unroll,
            ),
            argnums=(0, 1, 2, 3),
        )(params, xs, s0, eps)

    return grads(c.params, c.xs, s0, eps)


def assert_close(got, want, what, tol):
    got, want = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    assert len(got) == len(want), f"{what}: {len(got)} arrays vs {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        assert np.shape(a) == np.shape(b), f"{what}[{i}]: shape {np.shape(a)} vs {np.shape(b)}"
        err = max_rel_err(a, b)
        assert err <= tol, f"{what}[{i}]: max rel err {err:.3g} > {tol:g}"


def assert_gradients(g, ref, what, tol=1e-10):
    """``bptt.Gradients`` against ``(d params, d xs, d s0, d eps)``."""
    d_params, d_xs, d_s0, d_eps = ref
    assert_close(g.params, d_params, f"{what} d/dparams", tol)
    assert_close(g.inputs, d_xs, f"{what} d/dinputs", tol)
    assert_close(g.initial_state, d_s0, f"{what} d/ds0", tol)
    assert_close(g.states, d_eps, f"{what} d/ds_t", tol)


def layer_loss(layer, c):
    """``L(params, xs, s0) = <y, dys> + <s_T, d_final>`` through ``layer.apply`` on case ``c``
    (the layer returns sequences and its state)."""

    def loss(p, x, s0):
        y, *final = layer.apply(p, x, c.mask, initial_state=s0)
        return jnp.sum(y * c.dys) + jnp.sum(to_vec(final) * c.d_final)

    return loss


# --- finite differences -------------------------------------------------------------------------

FD_STEP = 1e-5
# The five-point central difference (f(-2h) - 8f(-h) + 8f(h) - f(2h)) / 12h in float64:
# truncation error h^4/30·|f^(5)| ~ 3e-22·|f^(5)|, negligible even for the layer-normalized LSTM's
# sharp curvature (where the three-point rule at this h is off by 2e-7); rounding about
# 1.5·eps·|L|/h ~ 3e-11·|L|, and |L| < 10 here. Measured: below 5e-10 relative; bound 1e-8.
FD_TOL = 1e-8


def unit_directions(tree, rng, n=3):
    """``n`` random directions in the space of ``tree``'s leaves, each of unit norm."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    out = []
    for _ in range(n):
        vs = [rng.normal(size=np.shape(a)) for a in leaves]
        norm = np.sqrt(sum(float(np.sum(v * v)) for v in vs))
        out.append(
            jax.tree_util.tree_unflatten(
                treedef, [jnp.asarray(v / norm, jnp.asarray(a).dtype) for v, a in zip(vs, leaves)]
            )
        )
    return out


def check_directional_derivatives(loss, point, grad, rng, what, n=3):
    """Central differences of ``loss`` at ``point`` along random unit directions against
    ``<grad, v>``; returns the largest relative error."""
    loss = fast_jit(loss)
    worst = 0.0
    for v in unit_directions(point, rng, n):

        def at(n, v=v):
            return float(loss(jax.tree_util.tree_map(lambda a, d: a + n * FD_STEP * d, point, v)))

        fd = (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * FD_STEP)
        ad = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(v)))
        assert abs(ad) > 1e-3, f"{what}: a direction with a vanishing derivative tests nothing"
        err = abs(fd - ad) / max(abs(ad), 1.0)
        assert err <= FD_TOL, f"{what}: finite difference {fd!r} vs gradient {ad!r} (rel err {err:.3g})"
        worst = max(worst, err)
    return worst


# --- 1 + 2: explicit BPTT = jax.grad of the loop = finite differences; states = dL/ds_t --------------

GRAD_CASES = {
    "no_mask_zero_init_backwards_input_dropout": dict(mask=None, init=False, go_backwards=True, dropout=0.4),
    "post_mask_init_dropout": dict(mask="post", dropout=0.3, recurrent_dropout=0.4),
    "pre_mask_backwards_zero_output": dict(mask="pre", go_backwards=True, zero_output_for_mask=True),
    "holes_unroll_backwards": dict(mask="holes", unroll=True, go_backwards=True, zero_output_for_mask=True),
}


@pytest.mark.parametrize("kind, case", sweep(CELL_KINDS, list(GRAD_CASES), default=lambda k, c: k % 4 == c))
def test_explicit_bptt_equals_autodiff_of_loop_and_finite_differences(x64, kind, case):
    c = make_case(kind, seed=sum(map(ord, kind + case)), **GRAD_CASES[case])
    g = explicit_backward(c)
    ref = reference_grads(c)
    assert g.inputs.dtype == jnp.float64
    assert_gradients(g, ref, f"{kind} {case}")
    if c.flags["unroll"] and c.mask is not None:
        # Keras's unrolled loop repeats the previous *output*; the same function of the inputs.
        keras_ref = reference_grads(c, keras_unroll=True)
        assert_close((g.params, g.inputs, g.initial_state), keras_ref[:3], f"{kind} {case} Keras unroll", 1e-10)
    np.testing.assert_array_equal(g.states[:, -1], c.d_final)  # dL/ds_T: only <s_T, d_final>
    s0 = zeros_state(c.cell) if c.s0 is None else c.s0
    point = (c.params, c.xs, s0)

    def loss(p):
        return loop_loss(c.cell, *p, None, c.dys, c.d_final, c.mask, c.flags, dropout_masks=c.dmasks)

    grad = (g.params, g.inputs, g.initial_state)
    check_directional_derivatives(loss, point, grad, np.random.default_rng(1), f"{kind} {case}")


# --- 1: stacked models and Bidirectional through the layers' VJP --------------------------------------


def seq_stack(bp):
    return rc.Sequential(
        [
            rc.layers.LSTM(4, return_sequences=True, backward_pass=bp),
            rc.layers.GRU(3, return_sequences=True, go_backwards=True, reset_after=False, backward_pass=bp),
            rc.layers.RNN(rc.cells.LayerNormLSTM(3), return_sequences=True, unroll=True, backward_pass=bp),
            rc.layers.SimpleRNN(3, backward_pass=bp),
            rc.layers.Dense(2),
        ]
    )


def bidirectional_stack(bp):
    return rc.Sequential(
        [
            rc.layers.Bidirectional(rc.layers.LSTM(3, return_sequences=True, backward_pass=bp)),
            rc.layers.Bidirectional(
                rc.layers.GRU(3, return_sequences=True, backward_pass=bp),
                merge_mode="sum",
                backward_layer=rc.layers.SimpleRNN(3, return_sequences=True, go_backwards=True, backward_pass=bp),
            ),
            rc.layers.Bidirectional(
                rc.layers.GRU(2, reset_after=False, return_state=True, backward_pass=bp), merge_mode=None
            ),
        ]
    )


def dropout_stack(bp):
    return rc.Sequential(
        [
            rc.layers.LSTM(3, dropout=0.3, recurrent_dropout=0.3, return_sequences=True, backward_pass=bp),
            rc.layers.Bidirectional(
                rc.layers.GRU(3, dropout=0.2, recurrent_dropout=0.4, return_sequences=True, backward_pass=bp),
                merge_mode="ave",
            ),
            rc.layers.RNN(rc.cells.LayerNormLSTM(3, recurrent_dropout=0.3), return_state=True, backward_pass=bp),
        ]
    )


MODELS = {
    "stacked_mask": (seq_stack, "holes", False),
    "bidirectional_mask": (bidirectional_stack, "post", False),
    "dropout_training_mask": (dropout_stack, "pre", True),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_model_gradients_explicit_equal_autodiff_and_finite_differences(x64, name):
    build, mask_name, training = MODELS[name]
    model, reference = build("explicit"), build("autodiff")
    assert all(getattr(layer, "backward_pass", "explicit") == "explicit" for layer in model.layers)
    rng = np.random.default_rng(sum(map(ord, name)))
    shapes = jax.eval_shape(lambda k: model.init(k, (T, F), jnp.float64), jax.random.PRNGKey(0))
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape) * 0.6), shapes)
    x = jnp.asarray(rng.normal(size=(B, T, F)))
    mask = make_mask(mask_name)
    key = jax.random.PRNGKey(5)
    weights = [
        jnp.asarray(rng.normal(size=o.shape))
        for o in jax.tree_util.tree_leaves(
            jax.eval_shape(lambda p, x: model.apply(p, x, mask, training, key), params, x)
        )
    ]

    def loss_of(m):
        def loss(p, x):
            out = jax.tree_util.tree_leaves(m.apply(p, x, mask, training=training, rng=key))
            return sum(jnp.sum(o * w) for o, w in zip(out, weights))

        return loss

    got = fast_jit(jax.grad(loss_of(model), argnums=(0, 1)))(params, x)
    want = fast_jit(jax.grad(loss_of(reference), argnums=(0, 1)))(params, x)
    assert_close(got, want, f"{name}: explicit vs autodiff", 1e-12)
    check_directional_derivatives(lambda px: loss_of(model)(*px), (params, x), got, rng, name)


# --- 3: float32 against Keras -------------------------------------------------------------------

KERAS_CASES = {
    "LSTM_post_backwards_init": ("LSTM", dict(go_backwards=True), "post", True, False),
    "GRU_holes_unroll_init": ("GRU", dict(unroll=True), "holes", True, False),
    "GRU_v1_dropout_zero_output_pre": (
        "GRU_v1",
        dict(zero_output_for_mask=True, dropout=0.3, recurrent_dropout=0.4),
        "pre",
        True,
        True,
    ),
    "SimpleRNN_dropout_no_mask": ("SimpleRNN", dict(dropout=0.3, recurrent_dropout=0.3), None, False, True),
}


@pytest.mark.parametrize("case", list(KERAS_CASES))
def test_explicit_bptt_equals_keras_gradients_float32(keras, case):
    """``bptt.backward`` for ``L = <y, w_0> + <h_T, w_1> (+ <c_T, w_2>)`` against ``jax.grad``
    of Keras's ``RNN(cell, return_sequences=True, return_state=True)`` with the same weights."""
    kind, kw, mask_name, init, training = KERAS_CASES[case]
    kw = dict(kw)
    rng = np.random.default_rng(sum(map(ord, case)))
    flags = {k: kw.pop(k) for k in ("go_backwards", "unroll", "zero_output_for_mask") if k in kw}
    k_layer = keras.layers.RNN(keras_cell(keras, kind, U, **kw), return_sequences=True, return_state=True, **flags)
    k_layer.build((B, T, F))
    weights = randomize(k_layer, rng)
    cell = make_cell(kind, **kw)
    params = cell.params_type(*weights)
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype("float32"))
    mask = make_mask(mask_name)
    s0 = (
        cell.state_type(*(jnp.asarray(a) for a in random_like(rng, [np.zeros((B, U))] * len(cell.state_type._fields))))
        if init
        else None
    )
    dmasks = None
    if training:
        dmasks = fast_jit(lambda k: cell.dropout_masks(k, B, F, jnp.float32))(jax.random.PRNGKey(3))
        inject_dropout_masks(k_layer.cell, dmasks, B, F, U)
    k_out, (k_gw, k_gx, k_gs) = keras_run(k_layer, x, s0, mask=mask, training=training)
    dys = _cotangent((B, T, U), 0)
    d_final = cell.state_type(*(_cotangent((B, U), k + 1) for k in range(len(cell.state_type._fields))))
    g = fast_jit(
        lambda p, x, s: bptt.backward(cell, p, x, dys, s, mask, d_final_state=d_final, dropout_masks=dmasks, **flags)
    )(params, x, s0)
    tr = bptt.forward(cell, params, x, s0, mask, dropout_masks=dmasks, **flags)
    assert_close((tr.outputs, *tr.final_state), k_out, f"{case} outputs", 1e-5)
    assert_close(g.params, k_gw, f"{case} d/dweights", 1e-5)
    assert_close(g.inputs, k_gx, f"{case} d/dinputs", 1e-5)
    if init:
        assert_close(g.initial_state, k_gs, f"{case} d/dinitial_state", 1e-5)


# --- 4: the layers use the explicit VJP by default ----------------------------------------------


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_layer_default_vjp_equals_autodiff_layer(x64, kind):
    """Through ``layer.apply`` with ``return_state``: the VJP's final-state cotangent and its
    initial-state gradient, against ``backward_pass="autodiff"``, to 1e-12."""
    c = make_case(kind, seed=41, mask="holes", go_backwards=True)
    flags = dict(return_sequences=True, return_state=True, go_backwards=True)
    explicit = rc.layers.RNN(c.cell, **flags)
    autodiff = rc.layers.RNN(c.cell, backward_pass="autodiff", **flags)
    assert explicit.backward_pass == "explicit"

    got = fast_jit(jax.grad(layer_loss(explicit, c), argnums=(0, 1, 2)))(c.params, c.xs, c.s0)
    want = fast_jit(jax.grad(layer_loss(autodiff, c), argnums=(0, 1, 2)))(c.params, c.xs, c.s0)
    assert_close(got, want, f"{kind}: explicit vs autodiff layer", 1e-12)
    g = explicit_backward(c)  # the same loss through bptt.backward
    assert_close(got, (g.params, g.inputs, g.initial_state), f"{kind}: layer vs bptt.backward", 1e-12)


@pytest.mark.parametrize("kind,truncate", [("LSTM", None), ("GRU_v1", 2)])
def test_scan_with_explicit_vjp_is_forward_with_backward_as_vjp(x64, kind, truncate):
    """The custom VJP itself: its primal is ``forward``'s ``(outputs, final_state)`` and its VJP
    of ``(dys, d_final)`` is the loop's gradient (truncated where asked)."""
    c = make_case(kind, seed=47, mask="holes", go_backwards=True, unroll=True, dropout=0.3, recurrent_dropout=0.3)
    flags = (True, False, True, truncate)  # go_backwards, zero_output_for_mask, unroll, truncate

    def primal(p, x, s0):
        return bptt.scan_with_explicit_vjp(c.cell, flags, p, x, s0, c.mask, c.dmasks)

    (ys, final), vjp = jax.vjp(primal, c.params, c.xs, c.s0)
    tr = bptt.forward(c.cell, c.params, c.xs, c.s0, c.mask, dropout_masks=c.dmasks, **c.flags)
    np.testing.assert_array_equal(ys, tr.outputs)
    for a, b in zip(final, tr.final_state):
        np.testing.assert_array_equal(a, b)
    got = fast_jit(vjp)((c.dys, from_vec(c.cell, c.d_final)))
    ref = reference_grads(c, truncate=truncate)
    assert_close(got, ref[:3], f"{kind} custom VJP", 1e-12)


@pytest.mark.parametrize(
    "kind, mask, zero_output_for_mask_and_unroll, go_backwards",
    diagonal(CELL_KINDS, [None, "pre", "holes"], [(False, False), (True, False), (False, True)], [False, True]),
)
def test_differentiated_layer_outputs_equal_the_forward_scan(
    x64, kind, mask, zero_output_for_mask_and_unroll, go_backwards
):
    """Differentiated, a layer with a hand-written core VJP reads its outputs from the states it
    keeps instead of writing them in its scan (except where a masked step emits zeros): the primal of
    its custom VJP equals ``bptt.forward``'s outputs exactly, with a non-zero initial state, masks
    that start a row with masked steps, Keras's zero outputs at masked steps, the unrolled masking,
    go_backwards and dropout."""
    zero_output_for_mask, unroll = zero_output_for_mask_and_unroll
    c = make_case(
        kind,
        seed=53,
        mask=mask,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
        unroll=unroll,
        dropout=0.2,
        recurrent_dropout=0.2,
    )
    flags = (go_backwards, zero_output_for_mask, unroll, None)
    (ys, final), _ = jax.vjp(
        lambda p: bptt.scan_with_explicit_vjp(c.cell, flags, p, c.xs, c.s0, c.mask, c.dmasks), c.params
    )
    tr = bptt.forward(c.cell, c.params, c.xs, c.s0, c.mask, dropout_masks=c.dmasks, **c.flags)
    np.testing.assert_array_equal(ys, tr.outputs)
    for a, b in zip(final, tr.final_state):
        np.testing.assert_array_equal(a, b)


def test_truncate_gradient_changes_layer_gradient_not_outputs(x64):
    c = make_case("LSTM", seed=5, steps=8)
    full = rc.layers.LSTM(U, return_sequences=True)
    cut = rc.layers.LSTM(U, return_sequences=True, truncate_gradient=2)
    np.testing.assert_array_equal(full.apply(c.params, c.xs), cut.apply(c.params, c.xs))
    dys = jnp.asarray(np.random.default_rng(0).normal(size=(B, 8, U)))

    def grad(layer):
        return fast_jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) * dys), argnums=(0, 1)))(c.params, c.xs)

    g_full, g_cut = grad(full), grad(cut)
    assert max_rel_err(g_cut[0].recurrent_kernel, g_full[0].recurrent_kernel) > 1e-3
    assert max_rel_err(g_cut[1][:, 0], g_full[1][:, 0]) > 1e-3
    assert_close(g_cut[1][:, -2:], g_full[1][:, -2:], "the last k2 inputs are within reach of every cut", 1e-12)
    ref = bptt.backward(c.cell, c.params, c.xs, dys, truncate_gradient=2)
    assert_close(g_cut, (ref.params, ref.inputs), "layer vs bptt.backward(truncate_gradient=2)", 1e-12)


def test_forward_mode_needs_autodiff_backward_pass(x64):
    c = make_case("GRU", seed=9, mask="post")
    autodiff = rc.layers.GRU(U, return_sequences=True, backward_pass="autodiff")
    explicit = rc.layers.GRU(U, return_sequences=True)
    rng = np.random.default_rng(2)
    ((v_params, v_x),) = unit_directions((c.params, c.xs), rng, 1)
    _, tangent = fast_jit(lambda p, x, vp, vx: jax.jvp(lambda p, x: autodiff.apply(p, x, c.mask), (p, x), (vp, vx)))(
        c.params, c.xs, v_params, v_x
    )
    # <J v, w> = <v, J^T w>, with J^T w from the explicit reverse scan
    w = c.dys
    g = fast_jit(jax.grad(lambda p, x: jnp.sum(explicit.apply(p, x, c.mask) * w), argnums=(0, 1)))(c.params, c.xs)
    lhs = float(jnp.sum(tangent * w))
    rhs = sum(
        float(jnp.vdot(a, b)) for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves((v_params, v_x)))
    )
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(rhs))
    with pytest.raises(TypeError, match="custom_vjp"):  # the default layer is the custom VJP
        jax.jvp(lambda x: explicit.apply(c.params, x, c.mask), (c.xs,), (v_x,))


# --- 5: truncated BPTT ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["LSTM", "GRU_v1"])
def test_truncate_at_least_T_is_full_bptt(x64, kind):
    c = make_case(kind, seed=12, mask="holes", go_backwards=True)
    full = explicit_backward(c)
    for k2 in (T, T + 3):
        assert_close(explicit_backward(c, truncate=k2), full, f"truncate_gradient={k2}", 1e-13)


TRUNCATION_CASES = {
    "k1_post_mask": dict(k2=1, mask="post"),
    "k3_holes_backwards_unroll_dropout": dict(
        k2=3, mask="holes", go_backwards=True, unroll=True, dropout=0.2, recurrent_dropout=0.3
    ),
}


@pytest.mark.parametrize("kind, case", sweep(CELL_KINDS, list(TRUNCATION_CASES), default=lambda k, c: k % 2 == c))
def test_truncated_bptt_equals_stop_gradient_loop(x64, kind, case):
    """``truncate_gradient=k2`` = the loop with ``stop_gradient`` on ``s_k2, s_2k2, ...``;
    ``states[:, t-1]`` is the gradient the truncated chain delivers to ``s_t`` (0 at a cut)."""
    cfg = dict(TRUNCATION_CASES[case])
    k2 = cfg.pop("k2")
    c = make_case(kind, seed=sum(map(ord, kind + case)), steps=7, **cfg)
    g = explicit_backward(c, truncate=k2)
    ref = reference_grads(c, truncate=k2)
    assert_gradients(g, ref, f"{kind} {case}", tol=1e-12)
    full = reference_grads(c)
    assert max_rel_err(ref[1], full[1]) > 1e-4, "truncation must change the input gradient here"
    cuts = [t for t in range(k2, 7, k2)]
    np.testing.assert_array_equal(g.states[:, [t - 1 for t in cuts]], 0.0)


@pytest.mark.parametrize("kind,k2,go_backwards", [("LSTM", 3, False), ("GRU", 2, True)])
def test_truncated_layer_equals_stop_gradient_loop(x64, kind, k2, go_backwards):
    c = make_case(kind, seed=21, steps=8, mask="holes" if go_backwards else "post", go_backwards=go_backwards)
    flags = dict(return_sequences=True, return_state=True, go_backwards=go_backwards)
    layer = getattr(rc.layers, kind)(U, truncate_gradient=k2, **flags)
    full_layer = getattr(rc.layers, kind)(U, **flags)

    got = fast_jit(jax.grad(layer_loss(layer, c), argnums=(0, 1, 2)))(c.params, c.xs, c.s0)
    ref = reference_grads(c, truncate=k2)
    assert_close(got, ref[:3], f"{kind} layer truncate_gradient={k2}", 1e-12)
    full = fast_jit(jax.grad(layer_loss(full_layer, c), argnums=(0, 1, 2)))(c.params, c.xs, c.s0)
    assert max_rel_err(got[1], full[1]) > 1e-4
    outs = [
        jax.tree_util.tree_leaves(lyr.apply(c.params, c.xs, c.mask, initial_state=c.s0)) for lyr in (layer, full_layer)
    ]
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


# --- 6: per-step Jacobians and their products ---------------------------------------------------------


class PairState(NamedTuple):
    h: jax.Array
    a: jax.Array


class PairParams(NamedTuple):
    kernel: jax.Array
    recurrent_kernel: jax.Array
    gate: jax.Array


@dataclasses.dataclass(frozen=True)
class LeakyPair(rc.cells.Cell):
    """A user's own cell with no closed-form ``jacobian``: a leaky accumulator ``a`` and a gated
    read-out ``h``."""

    dropout: float = 0.0
    recurrent_dropout: float = 0.0

    params_type = PairParams
    state_type = PairState

    def init(self, key, input_dim, dtype=jnp.float32):
        k1, k2, k3 = jax.random.split(key, 3)
        u = self.units
        return PairParams(
            jax.random.normal(k1, (input_dim, u), dtype),
            jax.random.normal(k2, (u, u), dtype),
            jax.random.normal(k3, (u, u), dtype),
        )

    def step(self, params, state, x, dropout_masks=None):
        a = 0.8 * state.a + 0.5 * jnp.tanh(x @ params.kernel + state.h @ params.recurrent_kernel)
        h = jnp.tanh(a) * jax.nn.sigmoid(state.h @ params.gate + a)
        return PairState(h, a), h


def jacfwd_step_jacobians(cell, params, xs, s0, mask, dmasks, go_backwards):
    """``J_t`` = ``jax.jacfwd`` of the written-out masked step w.r.t. ``s_{t-1}``, at the loop's
    states; ``(B, T, S, S)``."""
    _, states = run_loop(cell, params, xs, s0, mask, dropout_masks=dmasks, go_backwards=go_backwards)
    xs_p, mask_p = processing(xs, go_backwards), None if mask is None else processing(mask, go_backwards)
    js = []
    for t in range(1, xs.shape[1] + 1):

        def step(vec, t=t):
            prev = from_vec(cell, vec)
            new, _ = cell.step(params, prev, xs_p[:, t - 1], dmasks)
            if mask_p is not None:
                new = type(new)(*(jnp.where(mask_p[:, t - 1][:, None], a, b) for a, b in zip(new, prev)))
            return to_vec(new)

        js.append(diag_blocks(jax.jacfwd(step)(to_vec(states[t - 1]))))
    return jnp.stack(js, axis=1)


JACOBIAN_CASES = {
    "plain": dict(mask=None),
    "holes_backwards_dropout": dict(mask="holes", go_backwards=True, dropout=0.3, recurrent_dropout=0.4),
}


@pytest.mark.parametrize("kind, case", sweep(CELL_KINDS, list(JACOBIAN_CASES), default=lambda k, c: k % 2 != c))
def test_step_jacobians_equal_jacfwd_of_loop_step(x64, kind, case):
    c = make_case(kind, seed=sum(map(ord, kind + case)), **JACOBIAN_CASES[case])
    gb = c.flags["go_backwards"]
    J = fast_jit(lambda p, x, s: bptt.step_jacobians(c.cell, p, x, s, c.mask, dropout_masks=c.dmasks, go_backwards=gb))(
        c.params, c.xs, c.s0
    )
    ref = fast_jit(lambda p, x, s: jacfwd_step_jacobians(c.cell, p, x, s, c.mask, c.dmasks, gb))(c.params, c.xs, c.s0)
    assert J.shape == (B, T, state_size(c.cell), state_size(c.cell)) and J.dtype == jnp.float64
    assert_close(J, ref, f"{kind} {case}", 1e-12)
    eye = np.eye(state_size(c.cell))
    if c.mask is not None:
        masked = ~np.asarray(processing(c.mask, gb))
        assert masked.any()
        np.testing.assert_array_equal(np.asarray(J)[masked], np.broadcast_to(eye, (masked.sum(),) + eye.shape))
        real = ~masked
    else:
        real = np.ones((B, T), bool)
    assert np.all(np.abs(np.asarray(J)[real] - eye).max(axis=(-2, -1)) > 1e-3)


def _products_by_jacrev(cell, params, xs, s0, mask, dmasks, go_backwards):
    steps = xs.shape[1]
    flags = dict(dropout_masks=dmasks, go_backwards=go_backwards)
    _, states = run_loop(cell, params, xs, s0, mask, **flags)

    def s_end(vec, k, stop):
        _, ss = run_loop(cell, params, xs, from_vec(cell, vec), mask, start=k, stop=stop, **flags)
        return to_vec(ss[-1])

    P = [diag_blocks(jax.jacrev(functools.partial(s_end, k=k, stop=steps))(to_vec(states[k]))) for k in range(steps)]

    def all_states(vec):  # (B, T, S): s_1 .. s_T from s_0
        _, ss = run_loop(cell, params, xs, from_vec(cell, vec), mask, **flags)
        return jnp.stack([to_vec(s) for s in ss[1:]], axis=1)

    full = jax.jacrev(all_states)(to_vec(states[0]))  # (B, T, S, B, S)
    rows = jnp.arange(full.shape[0])
    Q = full[rows, :, :, rows, :]
    return jnp.stack(P, axis=1), Q


def products_by_jacrev(cell, params, xs, s0, mask, dmasks, go_backwards):
    """``(P, Q)``: ``P[:, k]`` = jacrev of ``s_T`` w.r.t. ``s_k`` by running the loop from ``s_k``;
    ``Q[:, t-1]`` = jacrev of ``s_t`` w.r.t. ``s_0``, all ``(B, T, S, S)`` (one compilation)."""
    return fast_jit(functools.partial(_products_by_jacrev, cell, mask=mask, dmasks=dmasks, go_backwards=go_backwards))(
        params, xs, s0
    )


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_jacobian_products_equal_jacrev_of_loop(x64, kind):
    c = make_case(kind, seed=31, mask="holes", go_backwards=True, dropout=0.2, recurrent_dropout=0.3, steps=5)
    gb = c.flags["go_backwards"]
    J = fast_jit(lambda p, x, s: bptt.step_jacobians(c.cell, p, x, s, c.mask, dropout_masks=c.dmasks, go_backwards=gb))(
        c.params, c.xs, c.s0
    )
    P_ref, Q_ref = products_by_jacrev(c.cell, c.params, c.xs, c.s0, c.mask, c.dmasks, gb)
    P_seq = bptt.jacobian_products(J)
    P_assoc = bptt.jacobian_products(J, method="associative")
    assert_close(P_seq, P_ref, f"{kind} sequential", 1e-12)
    assert_close(P_assoc, P_ref, f"{kind} associative", 1e-12)
    assert_close(P_assoc, P_seq, f"{kind} associative vs sequential", 1e-13)
    assert_close(bptt.jacobians_from_start(J), Q_ref, f"{kind} from start", 1e-12)
    np.testing.assert_array_equal(P_seq[:, -1], J[:, -1])  # P[:, T-1] = J_T


def test_user_cell_without_jacobian_uses_the_fallback(x64):
    cell = LeakyPair(3)
    assert getattr(cell, "jacobian", None) is None
    rng = np.random.default_rng(4)
    params = random_params(cell, rng, scale=0.8)
    xs = jnp.asarray(rng.normal(size=(B, T, F)))
    s0, mask = random_state(cell, rng), make_mask("holes")
    J = fast_jit(lambda p, x, s: bptt.step_jacobians(cell, p, x, s, mask, go_backwards=True))(params, xs, s0)
    ref = fast_jit(lambda p, x, s: jacfwd_step_jacobians(cell, p, x, s, mask, None, True))(params, xs, s0)
    assert_close(J, ref, "fallback step_jacobians", 1e-12)
    P_ref, Q_ref = products_by_jacrev(cell, params, xs, s0, mask, None, True)
    assert_close(bptt.jacobian_products(J), P_ref, "fallback products", 1e-12)
    assert_close(bptt.jacobians_from_start(J), Q_ref, "fallback from start", 1e-12)
    ys, states = run_loop(cell, params, xs, s0, mask, go_backwards=True)
    tr = bptt.forward(cell, params, xs, s0, mask, go_backwards=True)
    assert_close((tr.outputs, tr.final_state), (ys, states[-1]), "fallback forward", 1e-12)


def test_user_cell_with_only_step_gets_the_explicit_backward_pass(x64):
    """A cell without the projection/core split still differentiates through the explicit reverse
    scan (one VJP of its step per time step), directly and as a layer, truncated or not."""
    cell = LeakyPair(3)
    rng = np.random.default_rng(5)
    params = random_params(cell, rng, scale=0.8)
    xs = jnp.asarray(rng.normal(size=(B, T, F)))
    s0, mask = random_state(cell, rng), make_mask("holes")
    dy = jnp.asarray(rng.normal(size=(B, T, cell.units)))
    for truncate in (None, 2):

        def loss(p, x, s):
            ys, _ = run_loop(cell, p, x, s, mask, go_backwards=True, truncate=truncate)
            return jnp.sum(ys * dy)

        ref = fast_jit(jax.grad(loss, argnums=(0, 1, 2)))(params, xs, s0)
        g = fast_jit(
            lambda p, x, s, truncate=truncate: bptt.backward(
                cell, p, x, dy, s, mask, go_backwards=True, truncate_gradient=truncate
            )
        )(params, xs, s0)
        assert_close((g.params, g.inputs, g.initial_state), ref, f"user cell, truncate={truncate}", 1e-12)
        layer = rc.layers.RNN(cell, return_sequences=True, go_backwards=True, truncate_gradient=truncate)
        gl = fast_jit(
            jax.grad(lambda p, x, layer=layer: jnp.sum(layer.apply(p, x, mask, initial_state=s0) * dy), argnums=(0, 1))
        )(params, xs)
        assert_close(gl, ref[:2], f"user cell layer, truncate={truncate}", 1e-12)


# --- 7: long horizons in the log domain -----------------------------------------------------------


def log_norms_rescaled_float64(J):
    """``log ||J_T ⋯ J_{k+1}||_2`` for every k, in float64, the running product rescaled by its
    Frobenius norm at every step (exact for a scalar), its log accumulated aside: ``(B, T)``."""
    J = np.asarray(J, np.float64)
    batch, steps, size, _ = J.shape
    acc = np.broadcast_to(np.eye(size), (batch, size, size)).copy()
    log_scale = np.zeros(batch)
    out = np.zeros((batch, steps))
    for k in range(steps - 1, -1, -1):
        acc = acc @ J[:, k]
        scale = np.linalg.norm(acc, axis=(-2, -1))
        acc /= scale[:, None, None]
        log_scale += np.log(scale)
        out[:, k] = log_scale + np.log(np.linalg.norm(acc, 2, axis=(-2, -1)))
    return out


def default_init_jacobians(kind, steps, seed=0, dtype=jnp.float32):
    cell = make_cell(kind, units=8)
    params = cell.init(jax.random.PRNGKey(seed), 4, dtype)
    xs = jax.random.normal(jax.random.PRNGKey(seed + 1), (2, steps, 4), dtype)
    return jax.jit(lambda p, x: bptt.step_jacobians(cell, p, x))(params, xs)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM"])
def test_float32_product_underflows_over_1000_steps_log_norms_do_not(kind):
    """The motivating fact: at Keras's default init the float32 product ∂s_T/∂s_0 over T=1000 is
    exactly zero; the log-domain norms are finite and equal the float64 rescaled product of the
    very same float32 factors to 1e-5 of the log (measured: 5e-7, i.e. 1e-4 nats of 500)."""
    J = default_init_jacobians(kind, 1000)
    P = jax.jit(bptt.jacobian_products)(J)
    assert np.all(np.asarray(P[:, 0]) == 0.0)
    logn = np.asarray(jax.jit(bptt.log_norms_to_end)(J))
    assert logn.dtype == np.float32 and np.all(np.isfinite(logn))
    ref = log_norms_rescaled_float64(J)
    assert ref[:, 0].max() < np.log(np.finfo(np.float32).tiny)  # far below float32's range
    err = np.abs(logn - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 1e-5, err.max()


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM"])
def test_log_norms_float32_equal_float64_product_at_T200(kind):
    """Where float64 does not underflow (T=200), ``log_norms_to_end`` of float32 Jacobians equals
    the log of the 2-norm of the plain float64 product of float64 Jacobians of the same run, to
    1e-5 of the log (measured: 3e-7)."""
    with jax.enable_x64(True):
        J64 = np.asarray(default_init_jacobians(kind, 200, seed=3, dtype=jnp.float64))
    steps = J64.shape[1]
    acc = np.broadcast_to(np.eye(J64.shape[-1]), J64.shape[:1] + J64.shape[2:]).copy()
    ref = np.zeros(J64.shape[:2])
    for k in range(steps - 1, -1, -1):
        acc = acc @ J64[:, k]
        ref[:, k] = np.log(np.linalg.norm(acc, 2, axis=(-2, -1)))
    assert np.all(np.isfinite(ref))
    logn = np.asarray(jax.jit(bptt.log_norms_to_end)(jnp.asarray(J64, jnp.float32)))
    err = np.abs(logn - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 1e-5, err.max()


def orthogonal(n, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def linear_rnn_jacobians(recurrent_kernel, steps, seed=0):
    """``step_jacobians`` of ``SimpleRNN(activation=None)`` with the given recurrent kernel, float32."""
    units = recurrent_kernel.shape[0]
    cell = rc.cells.SimpleRNN(units, activation=None)
    p = cell.init(jax.random.PRNGKey(seed), 3)._replace(recurrent_kernel=jnp.asarray(recurrent_kernel, jnp.float32))
    xs = jax.random.normal(jax.random.PRNGKey(seed + 1), (2, steps, 3))
    return jax.jit(lambda p, x: bptt.step_jacobians(cell, p, x))(p, xs)


@pytest.mark.parametrize("a", [0.9, 1.1])
def test_linear_rnn_log_singular_values_closed_form_T1000(a):
    """``R = aQ``: ∂s_T/∂s_k = (aQᵀ)^(T-k), every singular value a^(T-k); the float32 product
    underflows (a=0.9: 0.9^1000 ≈ 2e-46) or overflows (a=1.1: 1.1^1000 ≈ 3e41). Relative 1e-5
    (measured: 2e-6)."""
    steps, units = 1000, 6
    J = linear_rnn_jacobians(a * orthogonal(units, 1), steps)
    P0 = np.asarray(jax.jit(bptt.jacobian_products)(J)[:, 0])
    assert np.all(P0 == 0.0) if a < 1 else not np.all(np.isfinite(P0))
    want = (steps - np.arange(steps)) * np.log(a)  # index k: (T - k) log a
    logn = np.asarray(jax.jit(bptt.log_norms_to_end)(J))
    assert np.all(np.isfinite(logn))
    assert (np.abs(logn - want) / np.abs(want)).max() <= 1e-5
    logsv = np.asarray(jax.jit(bptt.log_singular_values_to_end)(J))
    assert logsv.shape == (2, steps, units)
    assert (np.abs(logsv - want[:, None]) / np.abs(want[:, None])).max() <= 1e-5


def test_linear_rnn_distinct_singular_values_closed_form():
    """``R = Q diag(d) Qᵀ`` (symmetric): the singular values of the product over n steps are
    ``d_i^n``; all six, largest first, over T=100 (the smallest 7e-5 of the largest), to 1e-5
    (measured: 3e-6)."""
    steps, d = 100, np.array([0.9, 0.99, 0.93, 0.97, 0.91, 0.95])
    q = orthogonal(6, 2)
    J = linear_rnn_jacobians(q @ np.diag(d) @ q.T, steps, seed=4)
    logsv = np.asarray(jax.jit(bptt.log_singular_values_to_end)(J))
    n = steps - np.arange(steps)
    want = n[:, None] * np.log(np.sort(d)[::-1])[None, :]
    err = np.abs(logsv - want[None]) / np.maximum(1.0, np.abs(want[None]))
    assert err.max() <= 1e-5, err.max()
    top3 = np.asarray(bptt.log_singular_values_to_end(J, k=3))
    np.testing.assert_array_equal(top3, logsv[..., :3])


# --- 8: matrix-free top singular values -------------------------------------------------------------

TOP_CASES = {  # kind, mask, go_backwards, dropout, start, k
    "LSTM_k3": ("LSTM", None, False, {}, 1, 3),
    "GRU_v1_holes_k2": ("GRU_v1", "holes", False, {}, 2, 2),
    "SimpleRNN_post_backwards": ("SimpleRNN", "post", True, {}, 3, 2),
    "LayerNormLSTM_holes_dropout": ("LayerNormLSTM", "holes", True, dict(dropout=0.3, recurrent_dropout=0.2), 0, 1),
    "GRU_start_last_k1": ("GRU", "pre", False, {}, T - 1, 1),
}


@pytest.mark.parametrize("case", list(TOP_CASES))
def test_top_singular_values_equal_svd_of_formed_product(x64, case):
    kind, mask_name, go_backwards, kw, start, k = TOP_CASES[case]
    c = make_case(kind, seed=61, mask=mask_name, go_backwards=go_backwards, **kw)
    flags = dict(dropout_masks=c.dmasks, go_backwards=go_backwards)
    _, states = run_loop(c.cell, c.params, c.xs, c.s0, c.mask, **flags)

    def s_end(vec):
        _, ss = run_loop(c.cell, c.params, c.xs, from_vec(c.cell, vec), c.mask, start=start, **flags)
        return to_vec(ss[-1])

    P = np.asarray(diag_blocks(fast_jit(jax.jacrev(s_end))(to_vec(states[start]))))
    _, sv, vt = np.linalg.svd(P)
    # The power iteration converges as (s_{k+1}/s_k)^(2 * iterations): make sure it can (a row
    # masked throughout has P = I, where any subspace is exact). sqrt(eigenvalues of P^T P) resolves
    # singular values down to ~1e-8 of the largest: the top k sit well above that.
    ratio = sv[:, k] / sv[:, k - 1] if k < sv.shape[1] else np.zeros(B)
    assert np.all((ratio**200 < 1e-12) | np.all(sv == 1.0, axis=1))
    assert np.all(sv[:, k - 1] > 1e-3 * sv[:, 0])
    s, v = fast_jit(lambda p, x, s0: bptt.top_singular_values(c.cell, p, x, start, k, s0, c.mask, **flags))(
        c.params, c.xs, c.s0
    )
    assert s.shape == (B, k) and v.shape == (B, state_size(c.cell), k)
    assert_close(s, sv[:, :k], f"{case} singular values", 1e-8)
    # the right singular vectors, up to sign, where the singular values are separated
    checked = 0
    for b in range(B):
        for i in range(k):
            below = sv[b, i + 1] / sv[b, i] if i + 1 < sv.shape[1] else 0.0
            above = sv[b, i] / sv[b, i - 1] if i else 0.0
            if max(below, above) > 0.9:
                continue
            checked += 1
            assert abs(abs(float(v[b, :, i] @ vt[b, i])) - 1.0) <= 1e-8
            np.testing.assert_allclose(np.linalg.norm(P[b] @ np.asarray(v[b, :, i])), sv[b, i], rtol=1e-10)
    assert checked >= B - 1  # all but a row masked throughout (P = I)


# --- 9: bad input ----------------------------------------------------------------------------------


def _lstm():
    cell = rc.cells.LSTM(U)
    return cell, cell.init(jax.random.PRNGKey(0), F), jnp.ones((B, T, F))


@pytest.mark.parametrize("k", [0, -1, 2 * U + 1, 1.0, True])
def test_bad_k(k):
    cell, p, xs = _lstm()
    J = jnp.ones((B, T, 2 * U, 2 * U))
    with pytest.raises(ValueError, match=rf"k={k!r}; expected an integer in \[1, {2 * U}\]"):
        bptt.log_singular_values_to_end(J, k=k)
    with pytest.raises(ValueError, match=rf"k={k!r}; expected an integer in \[1, {2 * U}\]"):
        bptt.top_singular_values(cell, p, xs, k=k)


@pytest.mark.parametrize("start", [-1, T, T + 2, 1.5])
def test_bad_start(start):
    cell, p, xs = _lstm()
    with pytest.raises(ValueError, match=rf"start={start!r}; expected an integer in \[0, {T - 1}\]"):
        bptt.top_singular_values(cell, p, xs, start=start)


def test_numpy_integers_are_integers():
    """``start``, ``k`` and ``truncate_gradient`` from NumPy (``np.arange``) pass the checks, as
    the cells' ``units`` do (traced only: the values are used as Python ints)."""
    cell, p, xs = _lstm()
    s, v = jax.eval_shape(lambda: bptt.top_singular_values(cell, p, xs, start=np.int64(2), k=np.int32(2)))
    assert s.shape == (B, 2) and v.shape == (B, 2 * U, 2)
    J = jnp.ones((B, T, 2 * U, 2 * U))
    assert jax.eval_shape(lambda: bptt.log_singular_values_to_end(J, k=np.int64(2))).shape == (B, T, 2)
    g = jax.eval_shape(lambda: bptt.backward(cell, p, xs, jnp.ones((B, T, U)), truncate_gradient=np.int64(2)))
    assert g.inputs.shape == xs.shape
    assert bptt.check_truncate(np.int64(2)) == 2 and type(bptt.check_truncate(np.int64(2))) is int
    rc.layers.LSTM(U, truncate_gradient=np.int64(2))


def test_zero_time_steps():
    cell, p, _ = _lstm()
    xs = jnp.ones((B, 0, F))
    match = r"xs has T=0 time steps \(shape \(4, 0, 2\)\)"
    with pytest.raises(ValueError, match=match):
        bptt.forward(cell, p, xs)
    with pytest.raises(ValueError, match=match):
        bptt.backward(cell, p, xs, jnp.ones((B, 0, U)))
    with pytest.raises(ValueError, match=match):
        bptt.step_jacobians(cell, p, xs)
    with pytest.raises(ValueError, match=match):
        bptt.top_singular_values(cell, p, xs)
    J0 = jnp.ones((B, 0, 2 * U, 2 * U))
    for fn in (
        bptt.jacobian_products,
        bptt.jacobians_from_start,
        bptt.log_singular_values_to_end,
        bptt.log_norms_to_end,
    ):
        with pytest.raises(ValueError, match=r"J has T=0 steps"):
            fn(J0)


@pytest.mark.parametrize("shape", [(B, T, 2 * U), (T, 2 * U, 2 * U), (B, T, 2 * U, 2 * U + 1), (1, B, T, 2, 2, 2)])
def test_jacobians_of_wrong_rank_or_shape(shape):
    J = jnp.ones(shape)
    for fn in (bptt.jacobian_products, bptt.jacobians_from_start, bptt.log_norms_to_end):
        with pytest.raises(ValueError, match=r"J must have shape \(batch, time, S, S\); got shape " + re_shape(shape)):
            fn(J)


def re_shape(shape):
    return r"\(" + r", ".join(str(n) for n in shape) + r"\)"


def test_unknown_product_method():
    with pytest.raises(ValueError, match=r"method='parallel'; expected 'sequential' or 'associative'"):
        bptt.jacobian_products(jnp.ones((1, 2, 2, 2)), method="parallel")


def test_d_outputs_of_wrong_shape():
    cell, p, xs = _lstm()
    with pytest.raises(
        ValueError,
        match=r"d_outputs must have shape \(batch, time, units\) = \(4, 6, 3\); "
        r"got shape \(4, 5, 3\)",
    ):
        bptt.backward(cell, p, xs, jnp.ones((B, T - 1, U)))


@pytest.mark.parametrize("k2", [0, -2, 2.0, "3", True])
def test_bad_truncate_gradient(k2):
    cell, p, xs = _lstm()
    match = rf"truncate_gradient={k2!r}; expected None \(full BPTT\) or a positive integer k2"
    with pytest.raises(ValueError, match=match):
        bptt.backward(cell, p, xs, jnp.ones((B, T, U)), truncate_gradient=k2)
    with pytest.raises(ValueError, match=match):
        rc.layers.LSTM(U, truncate_gradient=k2)


def test_bad_backward_pass():
    with pytest.raises(ValueError, match=r"backward_pass='manual'; expected 'explicit' or 'autodiff'"):
        rc.layers.GRU(U, backward_pass="manual")
    with pytest.raises(ValueError, match=r"truncate_gradient needs backward_pass='explicit'"):
        rc.layers.SimpleRNN(U, backward_pass="autodiff", truncate_gradient=2)


@pytest.mark.parametrize("fn", ["forward", "step_jacobians", "backward"])
def test_wrong_rank_inputs_are_named(fn):
    cell = rc.cells.GRU(2)
    p = cell.init(jax.random.PRNGKey(0), 3)
    args = (jnp.ones((4, 2)),) if fn != "backward" else (jnp.ones((4, 2)), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match=r"xs must have shape \(batch, time, features\); got shape \(4, 2\)"):
        getattr(bptt, fn)(cell, p, *args)


def test_initial_state_may_be_a_plain_tuple():
    """A tuple of arrays is the cell's state, as in the layers (the scan carry keeps one structure)."""
    cell = rc.cells.LSTM(4)
    p = cell.init(jax.random.PRNGKey(0), 2)
    xs = jax.random.normal(jax.random.PRNGKey(1), (3, 5, 2))
    h, c = jnp.full((3, 4), 0.3), jnp.full((3, 4), -0.2)
    named = cell.state_type(h, c)
    d = jnp.ones((3, 5, 4))
    # each function compiled once per state structure (a plain tuple or list, the NamedTuple), not run op by op
    step_jacobians = fast_jit(lambda s: rc.bptt.step_jacobians(cell, p, xs, initial_state=s))
    states = fast_jit(lambda s: rc.bptt.forward(cell, p, xs, initial_state=s).states)
    d_s0 = fast_jit(lambda s: rc.bptt.backward(cell, p, xs, d, initial_state=s).initial_state)
    np.testing.assert_array_equal(step_jacobians((h, c)), step_jacobians(named))
    np.testing.assert_array_equal(states([h, c]), states(named))
    np.testing.assert_array_equal(d_s0((h, c)), d_s0(named))
    with pytest.raises(ValueError, match=r"initial_state for LSTM must hold 2 array\(s\) \(h, c\); got 1"):
        rc.bptt.step_jacobians(cell, p, xs, initial_state=(h,))


CORE_VJP_CASES = [
    ("SimpleRNN", {}),
    ("SimpleRNN", {"activation": "relu"}),
    ("SimpleRNN", {"activation": "gelu"}),
    ("SimpleRNN", {"activation": "sigmoid", "use_bias": False}),
    ("SimpleRNN", {"activation": None}),
    ("LSTM", {}),
    ("LSTM", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("LSTM", {"use_bias": False, "activation": "softsign"}),
    ("GRU", {}),
    ("GRU", {"activation": "relu", "use_bias": False}),
    ("GRU", {"recurrent_activation": "hard_sigmoid"}),
    ("GRU", {"reset_after": False}),
    ("LayerNormLSTM", {}),
]
# (masked, hand_written) of each case that runs by default: every case once, and each cell with a
# hand-written core VJP both with it on a masked input and traced
CORE_VJP_DEFAULT = [
    (True, True),
    (False, False),
    (False, True),
    (True, False),
    (True, True),
    (True, True),
    (False, True),
    (True, False),
    (True, True),
    (False, False),
    (False, True),
    (True, False),
    (True, False),
]


@pytest.mark.parametrize(
    "masked, kind_and_kwargs, hand_written",
    sweep([True, False], CORE_VJP_CASES, [True, False], default=lambda m, c, h: (not m, not h) == CORE_VJP_DEFAULT[c]),
)
def test_layer_vjp_with_or_without_the_hand_written_core_vjp_equals_autodiff(
    x64, masked, kind_and_kwargs, hand_written
):
    """The layers' reverse scan runs a cell's hand-written core VJP (SimpleRNN, LSTM, GRU) or a traced
    VJP of its core; both equal jax.grad of the autodiff layer (masked steps, recurrent and input
    dropout in training, activations whose derivative is or is not a function of the output)."""
    kind, kwargs = kind_and_kwargs
    base = getattr(rc.cells, kind)
    if not hand_written:
        base = type(f"Traced{kind}", (base,), {"has_core_vjp": False})
    cell = base(4, dropout=0.2, recurrent_dropout=0.3, **kwargs)
    has_one = kind in ("SimpleRNN", "LSTM") or (
        kind == "GRU" and kwargs.get("reset_after", True) and "recurrent_activation" not in kwargs
    )
    assert rc.bptt._has_core_vjp(cell) == (hand_written and has_one)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(3, 7, 2)))
    mask = jnp.asarray(rng.random((3, 7)) > 0.3) if masked else None
    explicit = rc.layers.RNN(cell, return_sequences=True, return_state=True)
    autodiff = rc.layers.RNN(cell, return_sequences=True, return_state=True, backward_pass="autodiff")
    p = explicit.init(jax.random.PRNGKey(0), (7, 2), jnp.float64)
    p = jax.tree_util.tree_map(lambda w: w + 0.3 * jnp.asarray(rng.normal(size=w.shape)), p)
    key = jax.random.PRNGKey(5)

    def loss(layer, p, x):  # the outputs and the final state both get a cotangent
        y, *final = layer.apply(p, x, mask, training=True, rng=key)
        return jnp.sum(y * jnp.sin(jnp.arange(y.size).reshape(y.shape))) + sum(
            jnp.sum(s * jnp.cos(jnp.arange(s.size).reshape(s.shape))) for s in final
        )

    got = fast_jit(jax.grad(lambda p, x: loss(explicit, p, x), argnums=(0, 1)))(p, x)  # one program, not op by op
    want = fast_jit(jax.grad(lambda p, x: loss(autodiff, p, x), argnums=(0, 1)))(p, x)
    for a, b in zip(
        explicit.apply(p, x, mask, training=True, rng=key), autodiff.apply(p, x, mask, training=True, rng=key)
    ):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("unroll_min_work, kind", diagonal([1, 10**9], ["SimpleRNN", "LSTM", "GRU"]))
def test_undifferentiated_layer_forward_unrolled_or_not_equals_the_kept_trajectory(monkeypatch, kind, unroll_min_work):
    """Undifferentiated, a layer runs a scan that keeps no states, unrolled SCAN_UNROLL steps per
    iteration where batch * units is large: outputs and final state equal bptt.forward's exactly
    (not unrolled) or to float32 rounding (unrolled: XLA fuses across the unrolled steps), with T = 7
    not a multiple of the unroll, masked steps, go_backwards and zero_output_for_mask."""
    monkeypatch.setattr(rc.bptt, "UNROLL_MIN_WORK", unroll_min_work)
    rng = np.random.default_rng(4)
    cell = getattr(rc.cells, kind)(5)
    p = cell.init(jax.random.PRNGKey(0), 3)
    x = jnp.asarray(rng.normal(size=(2, 7, 3)).astype(np.float32))
    mask = jnp.asarray(rng.random((2, 7)) > 0.3)
    for go_backwards, zero in [(False, False), (True, True)]:
        layer = rc.layers.RNN(
            cell, return_sequences=True, return_state=True, go_backwards=go_backwards, zero_output_for_mask=zero
        )
        y, *final = jax.jit(lambda p, x: layer.apply(p, x, mask))(p, x)
        tr = rc.bptt.forward(cell, p, x, mask=mask, go_backwards=go_backwards, zero_output_for_mask=zero)
        for a, b in zip([y, *final], [tr.outputs, *tr.final_state]):
            if unroll_min_work == 1:
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
            else:
                np.testing.assert_array_equal(a, b)


def _trajectory_copies_in_loops(text: str, steps: int) -> list[str]:
    """The lines of a compiled program's loop bodies that copy an f32 array of leading size ``steps``."""
    bodies = set(re.findall(r"body=%([\w.\-]+)", text))
    computations = {m.group(1): m.group(0) for m in re.finditer(r"(?ms)^%([\w.\-]+) \(.*?^}", text)}
    return [
        line
        for name in bodies
        for line in computations[name].splitlines()
        if re.search(rf"= f32\[{steps},[^=]* copy\(", line)
    ]


@pytest.mark.parametrize(
    "kind, masked, most",
    only(
        [
            ("SimpleRNN", False, 2.5),
            ("SimpleRNN", True, 3.5),
            ("LSTM", False, 7.5),
            ("LSTM", True, 7.5),
            ("GRU", False, 11.5),
            ("GRU", True, 11.5),
        ],
        keep=["SimpleRNN-False", "SimpleRNN-True", "LSTM-True", "GRU-False"],
        ids=[f"{k}-{m}" for k in ("SimpleRNN", "LSTM", "GRU") for m in (False, True)],
    ),
)
def test_layer_gradient_temporary_memory(kind, masked, most):
    """What forward+backward of a layer holds: the trajectory the forward pass keeps (SimpleRNN: the
    states each step starts from, 1 (T, B, H) array; LSTM: h and c and z (B, 4H), 6; GRU: h and
    four gate values, 5), the outputs (read from those states, 1), the output cotangent (1) and what
    the reverse scan writes (SimpleRNN and LSTM: over what each step read once, nothing new; masked
    SimpleRNN 1; GRU: x K's cotangent, 3, and of h R's only the candidate block, 1, the rest rebuilt
    after the loop where the kept gate values were). Bounds in units of T·B·H float32 (inputs are
    F = 2 wide, noise around the units), as XLA's buffer assignment reports them; while the forward
    scan also wrote the outputs, SimpleRNN, LSTM and GRU took 3.0, 8.1 and 13.1 (masked SimpleRNN
    4.0), before the reverse scan wrote in place and the forward scan kept s_0..s_{T-1} without
    a (T+1)-long copy, SimpleRNN and LSTM took 4.0 and 12.1, and while GRU's reverse scan kept all of
    h R's cotangent, 12.1."""
    b, t, f, h = 8, 50, 2, 16
    layer = rc.layers.RNN(getattr(rc.cells, kind)(h), return_sequences=True)
    x = jax.random.normal(jax.random.PRNGKey(1), (b, t, f))
    p = layer.cell.init(jax.random.PRNGKey(0), f)
    mask = jax.random.uniform(jax.random.PRNGKey(2), (b, t)) > 0.2 if masked else None
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x, mask))), argnums=(0, 1)))
    compiled = grad.lower(p, x).compile()
    assert compiled.memory_analysis().temp_size_in_bytes / (t * b * h * 4) < most
    assert not _trajectory_copies_in_loops(compiled.as_text(), t)


@pytest.mark.parametrize(
    "kind, masked, size",
    sweep(
        ["SimpleRNN", "LSTM", "GRU"],
        [False, True],
        [(8, 50, 2, 16), (16, 300, 8, 64)],
        default=lambda k, m, z: (k, m, z) in {(0, 0, 0), (1, 1, 1), (2, 1, 0)},
    ),
)
def test_no_loop_of_the_layer_gradient_copies_a_whole_trajectory(kind, masked, size):
    """Where the reverse scan writes over an array it reads, every read must be ordered before the
    write; where XLA cannot order them it copies the whole (T, ...) array in every step (10x slower
    measured). Checked in the compiled program with masks, dropout in training, go_backwards and
    cotangents on the outputs and the final state."""
    b, t, f, h = size
    layer = rc.layers.RNN(
        getattr(rc.cells, kind)(h, dropout=0.2, recurrent_dropout=0.2),
        return_sequences=True,
        return_state=True,
        go_backwards=masked,
    )
    x = jax.random.normal(jax.random.PRNGKey(1), (b, t, f))
    p = layer.cell.init(jax.random.PRNGKey(0), f)
    mask = jax.random.uniform(jax.random.PRNGKey(2), (b, t)) > 0.2 if masked else None

    def loss(p, x):
        y, *final = layer.apply(p, x, mask, training=True, rng=jax.random.PRNGKey(3))
        return jnp.sum(jnp.sin(y)) + sum(jnp.sum(s**2) for s in final)

    text = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(p, x).compile().as_text()
    assert len(set(re.findall(r"body=%([\w.\-]+)", text))) >= 2  # the forward and reverse scans, PRNG loops
    assert not _trajectory_copies_in_loops(text, t)


def _dots_per_scan_step(jaxpr) -> list[int]:
    """The matmuls (``dot_general``) in the body of every ``scan`` of a jaxpr, outermost first,
    counting those in calls nested inside a body."""

    def sub_jaxprs(eqn):
        for value in eqn.params.values():
            for v in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(v, jax.extend.core.ClosedJaxpr):
                    yield v.jaxpr
                elif isinstance(v, jax.extend.core.Jaxpr):
                    yield v

    def dots(jx):
        return sum((e.primitive.name == "dot_general") + sum(dots(j) for j in sub_jaxprs(e)) for e in jx.eqns)

    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            found.append(dots(eqn.params["jaxpr"].jaxpr))
        else:
            for j in sub_jaxprs(eqn):
                found += _dots_per_scan_step(j)
    return found


@pytest.mark.parametrize(
    "kind, dropout, per_step",
    [("SimpleRNN", 0.0, 1), ("LSTM", 0.0, 1), ("LSTM", 0.3, 2), ("GRU", 0.0, 2), ("LayerNormLSTM", 0.0, 2)],
)
def test_forward_scans_take_one_matmul_per_step_where_the_core_sums_the_projections(kind, dropout, per_step):
    """SimpleRNN and LSTM read x K and h R only as their sum, so their forward scans, undifferentiated
    and the one that keeps residuals for the reverse scan, take both as one matmul [x, h] [K; R]
    (dispatch counts at small sizes: benchmarks/README.md); with dropout masks, for GRU (its reset
    gate multiplies h R) and LayerNormLSTM (normalizes each) the two stay apart."""
    layer = rc.layers.RNN(getattr(rc.cells, kind)(4, dropout=dropout), return_sequences=True)
    p = layer.cell.init(jax.random.PRNGKey(0), 3)
    x = jnp.ones((2, 5, 3))
    key = jax.random.PRNGKey(1)
    assert _dots_per_scan_step(jax.make_jaxpr(lambda p: layer.apply(p, x, training=True, rng=key))(p).jaxpr) == [
        per_step
    ]
    grad = jax.make_jaxpr(jax.grad(lambda p: jnp.sum(layer.apply(p, x, training=True, rng=key))))(p).jaxpr
    assert _dots_per_scan_step(grad)[0] == per_step


@pytest.mark.parametrize("kind, use_bias", diagonal(["SimpleRNN", "LSTM"], [True, False]))
def test_one_matmul_per_step_equals_two(x64, monkeypatch, kind, use_bias):
    """The layer with its step's projections as one matmul [x, h] [K; R] equals the same layer with
    x K + h R as two (the cell with ``sums_projections`` off), outputs, final states and gradients
    with respect to params, inputs and initial state, in float64 with masks, go_backwards and an
    unrolled forward; and its outputs equal the Python loop of cell.step."""
    rng = np.random.default_rng(7)
    cell = getattr(rc.cells, kind)(U, use_bias=use_bias)
    two = type(f"Two{kind}", (type(cell),), {"sums_projections": False})(U, use_bias=use_bias)
    p = random_params(cell, rng)
    x = jnp.asarray(rng.normal(size=(B, T, F)))
    s0 = random_state(cell, rng)
    mask = make_mask("holes")
    for go_backwards, unroll_min_work in [(False, 10**9), (True, 1)]:
        monkeypatch.setattr(rc.bptt, "UNROLL_MIN_WORK", unroll_min_work)
        results = {}
        for joint, c in ((True, cell), (False, two)):
            layer = rc.layers.RNN(c, return_sequences=True, return_state=True, go_backwards=go_backwards)

            def run(p, x, s0, layer=layer):
                y, *final = layer.apply(p, x, mask, initial_state=s0)
                return y, final

            def loss(p, x, s0, run=run):
                y, final = run(p, x, s0)
                return jnp.sum(jnp.sin(y)) + sum(jnp.sum(jnp.cos(s)) for s in final)

            assert _dots_per_scan_step(jax.make_jaxpr(run)(p, x, s0).jaxpr) == [1 if joint else 2]
            results[joint] = (jax.jit(run)(p, x, s0), jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(p, x, s0))
        for a, b in zip(jax.tree_util.tree_leaves(results[True]), jax.tree_util.tree_leaves(results[False])):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        ys, states = run_loop(cell, p, x, s0, mask, go_backwards=go_backwards)
        np.testing.assert_allclose(results[True][0][0], ys, rtol=1e-12, atol=1e-13)
