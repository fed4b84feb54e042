"""StackedCells: RNN over it equals Keras's RNN over a list of cells and over StackedRNNCells
(outputs, return_state's structure, go_backwards, masks, gradients); its block lower-triangular
Jacobian equals jax.jacfwd of its step; bptt and analysis run on it; bad input is refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import max_rel_err, random_like

import rnncore as rc

B, T, F = 3, 6, 4


def _keras_cells(keras):
    L = keras.layers
    return [L.SimpleRNNCell(3), L.LSTMCell(2, unit_forget_bias=False), L.GRUCell(4, reset_after=False)]


STACK = rc.cells.StackedCells((rc.cells.SimpleRNN(3), rc.cells.LSTM(2), rc.cells.GRU(4, reset_after=False)))


def _params(weights):
    return STACK.params_type(*(tuple(weights[i : i + 3]) for i in range(0, 9, 3)))


def _mask():
    m = np.ones((B, T), bool)
    m[0, :2] = False  # pre-padded
    m[1, -3:] = False  # post-padded
    m[2, 3] = False  # a hole
    return jnp.asarray(m)


@pytest.mark.parametrize(
    "wrap, go_backwards, unroll",
    [
        ("list", False, False),
        pytest.param("list", True, False, marks=pytest.mark.slow),  # its values: the other two cases
        ("StackedRNNCells", True, True),
    ],
)
def test_rnn_over_stacked_cells_matches_keras(keras, wrap, go_backwards, unroll):
    rng = np.random.default_rng(int(go_backwards) + 2 * (wrap == "list"))
    cells = _keras_cells(keras)
    klayer = keras.layers.RNN(
        cells if wrap == "list" else keras.layers.StackedRNNCells(cells),
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
        unroll=unroll,
    )
    klayer.build((None, T, F))
    weights = random_like(rng, klayer.get_weights())
    layer = rc.layers.RNN(STACK, return_sequences=True, return_state=True, go_backwards=go_backwards, unroll=unroll)
    x = jnp.asarray(rng.normal(size=(B, T, F)).astype("float32"))
    mask = _mask()
    projs = [jnp.asarray(rng.normal(size=s).astype("float32")) for s in [(B, T, 4), (B, 3), (B, 2), (B, 2), (B, 4)]]

    frozen = [v.value for v in klayer.non_trainable_variables]  # the cells' dropout seeds

    def keras_loss(w, x):
        out, _ = klayer.stateless_call(w, frozen, x, mask=mask)
        flat = [out[0]] + jax.tree_util.tree_leaves(out[1:])
        return sum(jnp.sum(a * p) for a, p in zip(flat, projs)), out

    def our_loss(p, x):
        out = layer.apply(p, x, mask)
        flat = [out[0]] + jax.tree_util.tree_leaves(out[1:])
        return sum(jnp.sum(a * p) for a, p in zip(flat, projs)), out

    (_, out_k), (dw_k, dx_k) = jax.jit(jax.value_and_grad(keras_loss, argnums=(0, 1), has_aux=True))(
        [jnp.asarray(w) for w in weights], x
    )
    (_, out), (dp, dx) = jax.jit(jax.value_and_grad(our_loss, argnums=(0, 1), has_aux=True))(_params(weights), x)
    # Keras returns (output, [h1], [h2, c2], [h3]); rnncore (output, SimpleRNNState, LSTMState, GRUState)
    assert len(out) == len(out_k) == 4
    assert [len(s) for s in out[1:]] == [len(s) for s in out_k[1:]] == [1, 2, 1]
    assert isinstance(out[2], rc.cells.LSTMState)
    for a, b in zip([out[0]] + jax.tree_util.tree_leaves(out[1:]), [out_k[0]] + jax.tree_util.tree_leaves(out_k[1:])):
        assert max_rel_err(a, b) < 2e-6
    assert max_rel_err(dx, dx_k) < 2e-6
    for a, b in zip(jax.tree_util.tree_leaves(dp), dw_k):
        assert max_rel_err(a, b) < 2e-6


def test_stacked_step_and_layer_equal_a_loop_of_the_cells_float64(x64):
    """The stack's step is each cell's step in turn; the layer is a loop of them (masked steps carry)."""
    rng = np.random.default_rng(4)
    p = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape)), STACK.init(jax.random.PRNGKey(0), F))
    x = jnp.asarray(rng.normal(size=(B, T, F)))
    mask = np.asarray(_mask())
    ys = jax.jit(rc.layers.RNN(STACK, return_sequences=True).apply)(p, x, jnp.asarray(mask))
    steps = [jax.jit(c.step) for c in STACK.cells]
    states = [c.initial_state(B, jnp.float64) for c in STACK.cells]
    prev_y = jnp.zeros((B, 4))
    for t in range(T):
        h = x[:, t]
        new = []
        for step, pc, s in zip(steps, p, states):
            s, h = step(pc, s, h)
            new.append(s)
        keep = mask[:, t][:, None]
        states = [jax.tree_util.tree_map(lambda n, o: jnp.where(keep, n, o), n, o) for n, o in zip(new, states)]
        prev_y = jnp.where(keep, h, prev_y)
        assert max_rel_err(ys[:, t], prev_y) < 1e-12


def test_stacked_jacobian_is_block_lower_triangular_and_equals_jacfwd(x64):
    rng = np.random.default_rng(5)
    p = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape)), STACK.init(jax.random.PRNGKey(0), F))
    s = STACK.vector_to_state(jnp.asarray(rng.normal(size=(B, STACK.state_size))))
    x = jnp.asarray(rng.normal(size=(B, F)))
    jac = jax.jit(STACK.jacobian)(p, s, x)

    def step_row(sv, xr):
        new, _ = STACK.step(p, STACK.vector_to_state(sv[None]), xr[None])
        return STACK.state_to_vector(new)[0]

    want = jax.jit(jax.vmap(jax.jacfwd(step_row)))(STACK.state_to_vector(s), x)
    assert jac.shape == (B, 11, 11)
    assert max_rel_err(jac, want) < 1e-12
    # cell k's new state does not depend on a later cell's previous state
    assert float(jnp.abs(jac[:, :3, 3:]).max()) == 0 and float(jnp.abs(jac[:, 3:7, 7:]).max()) == 0
    # with dropout masks as well (the masks enter every block)
    drop = rc.cells.StackedCells(
        (rc.cells.LSTM(2, dropout=0.3, recurrent_dropout=0.2), rc.cells.SimpleRNN(3, recurrent_dropout=0.4))
    )
    pd = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape)), drop.init(jax.random.PRNGKey(1), F))
    masks = drop.dropout_masks(jax.random.PRNGKey(2), B, F, jnp.float64)
    sd = drop.vector_to_state(jnp.asarray(rng.normal(size=(B, drop.state_size))))
    closed = jax.jit(drop.jacobian)(pd, sd, x, masks)
    assert (
        max_rel_err(closed, jax.jit(rc.cells.Cell.jacobian_fallback, static_argnums=0)(drop, pd, sd, x, masks)) < 1e-12
    )


@pytest.mark.slow
def test_bptt_and_lyapunov_run_on_a_stack(x64):
    rng = np.random.default_rng(6)
    p = jax.tree_util.tree_map(
        lambda a: jnp.asarray(0.6 * rng.normal(size=a.shape)), STACK.init(jax.random.PRNGKey(0), F)
    )
    x = jnp.asarray(rng.normal(size=(2, 8, F)))
    mask = jnp.ones((2, 8), bool).at[0, 5].set(False)
    d_out = jnp.asarray(rng.normal(size=(2, 8, 4)))

    def one(s_vec, x_row):
        new, _ = STACK.step(p, STACK.vector_to_state(s_vec[None]), x_row[None])
        return STACK.state_to_vector(new)[0]

    @jax.jit
    def run(p, x):
        js = rc.bptt.step_jacobians(STACK, p, x, mask=mask)
        prev = jax.tree_util.tree_map(lambda a: a[:, :-1], rc.bptt.forward(STACK, p, x, mask=mask).states)
        want = jax.vmap(jax.vmap(jax.jacfwd(one)))(STACK.state_to_vector(prev), x)
        g = rc.bptt.backward(STACK, p, x, d_out, mask=mask)
        g_ref = jax.grad(lambda p, x: jnp.sum(rc.bptt.forward(STACK, p, x, mask=mask).outputs * d_out), argnums=(0, 1))(
            p, x
        )
        prev_u = jax.tree_util.tree_map(lambda a: a[:, :-1], rc.bptt.forward(STACK, p, x).states)
        unmasked = jax.vmap(jax.vmap(jax.jacfwd(one)))(STACK.state_to_vector(prev_u), x)
        return js, jnp.where(mask[:, :, None, None], want, jnp.eye(11)), g, g_ref, unmasked

    js, want, g, g_ref, unmasked = run(p, x)
    assert max_rel_err(js, want) < 1e-12
    # the explicit reverse scan equals jax.grad through the forward scan
    assert max_rel_err(g.inputs, g_ref[1]) < 1e-12
    for a, b in zip(jax.tree_util.tree_leaves(g.params), jax.tree_util.tree_leaves(g_ref[0])):
        assert max_rel_err(a, b) < 1e-12
    # the Lyapunov spectrum equals the QR method (Benettin et al.) run in NumPy on jacfwd's Jacobians
    lam = rc.analysis.lyapunov_spectrum(STACK, p, x)
    want_lam = []
    frames = np.linalg.qr(np.asarray(jax.random.normal(jax.random.PRNGKey(0), (2, 11, 11), jnp.float64)))[0]
    for row, q in zip(np.asarray(unmasked), frames):  # from the same initial frame, Q of a Gaussian's QR
        logs = np.zeros(11)
        for jac in row:
            q, r = np.linalg.qr(jac @ q)
            logs += np.log(np.abs(np.diag(r)))
        want_lam.append(np.sort(logs / len(row))[::-1])
    assert lam.shape == (2, 11)
    assert max_rel_err(lam, np.array(want_lam)) < 1e-10


def test_stacked_initial_state_and_params_are_checked():
    layer = rc.layers.RNN(STACK)
    p = layer.init(jax.random.PRNGKey(0), (T, F))
    x = jnp.ones((2, T, F))
    s0 = STACK.initial_state(2)
    assert layer.apply(p, x, initial_state=tuple(tuple(s) for s in s0)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"initial_state for StackedCells must hold 3 state\(s\), one per cell"):
        layer.apply(p, x, initial_state=(s0[0], s0[1]))
    with pytest.raises(ValueError, match=r"initial_state.cell_1.c must have shape \(batch, units\) = \(2, 2\)"):
        layer.apply(p, x, initial_state=(s0[0], (s0[1].h, jnp.ones((2, 3))), s0[2]))
    with pytest.raises(ValueError, match=r"params for StackedCells must hold one params entry per cell \(3\); got 2"):
        layer.apply(p[:2], x)
    with pytest.raises(ValueError, match=r"StackedCells cell 1: params.kernel for LSTM\(units=2\) must be shape"):
        layer.apply((p[0], p[1]._replace(kernel=jnp.ones((3, 4))), p[2]), x)
    with pytest.raises(ValueError, match=r"StackedCells cell 1: its params take 5 input features; expected 3"):
        layer.apply((p[0], rc.cells.LSTM(2).init(jax.random.PRNGKey(1), 5), p[2]), x)
    with pytest.raises(ValueError, match=r"inputs has 3 features .* but the layer's kernel expects 4"):
        layer.apply(p, jnp.ones((2, T, 3)))
    with pytest.raises(ValueError, match=r"cells=\(\); expected a non-empty tuple of rnncore cells"):
        rc.cells.StackedCells(())
    with pytest.raises(ValueError, match=r"cells\[1\] \(Dense\) is not an rnncore cell"):
        rc.cells.StackedCells((rc.cells.GRU(2), rc.layers.Dense(2)))


def test_stacked_dropout_draws_each_cells_own_masks():
    stack = rc.cells.StackedCells((rc.cells.GRU(3, dropout=0.5), rc.cells.SimpleRNN(2), rc.cells.LSTM(2, dropout=0.2)))
    assert stack.dropout == 0.5 and stack.recurrent_dropout == 0.0
    masks = stack.dropout_masks(jax.random.PRNGKey(0), 4, 5)
    assert masks[1] is None
    assert masks[0].inputs.shape == (1, 4, 5) and masks[2].inputs.shape == (1, 4, 2)
    assert rc.cells.StackedCells((rc.cells.GRU(3),)).dropout_masks(jax.random.PRNGKey(0), 4, 5) is None
    layer = rc.layers.RNN(stack)
    p = layer.init(jax.random.PRNGKey(0), (T, 5))
    x = jnp.ones((4, T, 5))
    y0 = layer.apply(p, x)
    assert not np.allclose(layer.apply(p, x, training=True, rng=jax.random.PRNGKey(1)), y0)
    with pytest.raises(ValueError, match="needs rng="):
        layer.apply(p, x, training=True)
