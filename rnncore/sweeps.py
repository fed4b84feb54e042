r"""Many networks at once: the analyses of :mod:`rnncore.analysis` for N networks in one compiled
program, optionally sharded over devices.

A *sweep* takes params stacked along a leading network axis: a params NamedTuple whose every leaf
has an extra leading axis of length N, e.g. ``jax.vmap(lambda k: cell.init(k, F))(keys)`` (N
initializations) or ``jax.vmap(lambda g: p._replace(recurrent_kernel=g * p.recurrent_kernel))(gains)``
(one network at N gains, the classic transition-to-chaos sweep: Sompolinsky, Crisanti & Sommers
1988; Engelken, Wolf & Abbott 2020). Network n is

.. math::
    \theta^{(n)} = \big(\texttt{leaf}[n] \ \text{for every leaf}\big),

and every function here returns, along a new leading axis, exactly what the single-network function
of :mod:`rnncore.analysis` returns for :math:`\theta^{(n)}` (the same traced code under
``jax.vmap``; float64 results agree to ~1e-12). The inputs ``xs`` are shared ``(B, T, F)`` or per
network ``(N, B, T, F)``; likewise ``mask`` ``(B, T)`` or ``(N, B, T)`` and the leaves of
``initial_state`` ``(B, ·)`` or ``(N, B, ·)``.

**One program.** All N networks run in a single ``jit``-compiled program (the initial state and the
Lyapunov frame are drawn inside it too), so a sweep compiles once and then costs one dispatch,
however many networks it holds.

**Non-finite values.** Inside the program, a network whose trajectory reaches NaN or inf (or, for
the Lyapunov spectrum, a non-finite Jacobian) has its whole result replaced by NaN. After the run,
``on_nonfinite="raise"`` (the default) raises a ``ValueError`` naming the first such network index,
with the step and batch row as :mod:`rnncore.analysis` names them; ``on_nonfinite="nan"`` returns
the results as they are, NaN for exactly those networks (``-inf`` remains a legitimate value, an
exactly singular Jacobian), so that one diverging network of a large sweep does not cost the others.

**Many devices.** ``mesh=`` (a ``jax.sharding.Mesh``, or a sequence of devices, which becomes a
one-axis mesh named ``"networks"``) shards the network axis over every axis of the mesh
(``NamedSharding(mesh, PartitionSpec(mesh.axis_names))``); shared inputs are replicated. Networks
are independent, so the sharded program needs no communication and its results equal the unsharded
ones. N need not divide evenly: the network axis is padded inside the program with copies of
network 0 up to a multiple of the device count, and the padding is dropped from the results.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from rnncore import cells, sweeps
    >>> cell = cells.SimpleRNN(3, activation=None, use_bias=False)
    >>> p = cell.init(jax.random.PRNGKey(0), 1)._replace(recurrent_kernel=jnp.eye(3))
    >>> gains = jnp.array([0.5, 1.0, 2.0])
    >>> stacked = jax.vmap(lambda g: p._replace(recurrent_kernel=g * p.recurrent_kernel))(gains)
    >>> lam = sweeps.lyapunov_spectra(cell, stacked, jnp.zeros((1, 30, 1)), k=1)  # (N, B, k)
    >>> [round(v, 4) for v in lam[:, 0, 0].tolist()]  # ln g
    [-0.6931, 0.0, 0.6931]

References:
    Benettin, Galgani, Giorgilli & Strelcyn (1980), Lyapunov characteristic exponents for smooth
    dynamical systems, Meccanica 15. Engelken, Wolf & Abbott (2020), Lyapunov spectra of chaotic
    recurrent neural networks, arXiv:2006.02427. Xu et al. (2021), GSPMD: general and scalable
    parallelization for ML computation graphs, arXiv:2105.04663.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from . import analysis, bptt, checks, compilation
from .meshes import mesh_over as mesh_over  # re-exported: its home is rnncore.meshes
from .meshes import network_mesh

__all__ = [
    "lyapunov_spectra",
    "singular_values_by_lag",
    "log_norms_to_end",
    "step_jacobians",
    "stack_params",
    "network_mesh",
]


# --- arguments ----------------------------------------------------------------------------------


def stack_params(params_list) -> tuple:
    """Stack a sequence of N params NamedTuples (one cell type, equal shapes) along a new leading
    network axis.

    Example:
        >>> import jax
        >>> from rnncore import cells, sweeps
        >>> cell = cells.GRU(2)
        >>> ps = [cell.init(jax.random.PRNGKey(i), 3) for i in range(4)]
        >>> sweeps.stack_params(ps).kernel.shape
        (4, 3, 6)
    """
    params_list = list(params_list)
    if not params_list:
        raise ValueError("stack_params needs at least one params NamedTuple.")
    kinds = {type(p) for p in params_list}
    if len(kinds) != 1:
        raise ValueError(f"stack_params: all params must be of one type; got {sorted(k.__name__ for k in kinds)}.")
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *params_list)


def _count(cell, stacked_params, features: int) -> int:
    """N, after checking that every leaf is the cell's param shape with one leading axis."""
    expected = jax.eval_shape(lambda: cell.init(jax.random.PRNGKey(0), features))
    if type(stacked_params) is not type(expected):
        raise ValueError(
            f"stacked_params must be a {type(expected).__name__} whose leaves have a leading network "
            f"axis; got {type(stacked_params).__name__}."
        )
    n = None
    for name, leaf, want in zip(expected._fields, stacked_params, expected):
        if want is None or leaf is None:
            if (want is None) != (leaf is None):
                raise ValueError(
                    f"stacked_params.{name} is {'None' if leaf is None else 'an array'}; this "
                    f"{type(cell).__name__} has {'no' if want is None else 'an'} {name}."
                )
            continue
        shape = tuple(np.shape(leaf))
        if len(shape) != len(want.shape) + 1 or shape[1:] != tuple(want.shape):
            raise ValueError(
                f"stacked_params.{name} has shape {shape}; expected (N,) + {tuple(want.shape)} "
                f"(N networks of a {type(cell).__name__} on {features} input features)."
            )
        if n is not None and shape[0] != n:
            raise ValueError(f"stacked_params.{name} holds {shape[0]} networks; earlier leaves hold {n}.")
        n = shape[0]
    if not n:
        raise ValueError("stacked_params holds no network (N = 0).")
    return n


def _inputs(cell, stacked_params, xs, initial_state, mask):
    """Checked ``(n, params, xs, xs_axis, s0, s0_axis, mask, mask_axis)``; an axis is 0 (per network)
    or None (shared)."""
    if not hasattr(xs, "shape") or not hasattr(xs, "dtype"):
        xs = jnp.asarray(xs)
    if len(xs.shape) not in (3, 4):
        raise ValueError(
            f"xs must be shared (batch, time, features) or per network (N, batch, time, features); "
            f"got shape {tuple(xs.shape)}."
        )
    one = tuple(xs.shape[-3:])
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        raise ValueError(f"xs must be a floating-point array (float32 or float64); got dtype {xs.dtype}.")
    if 0 in one[:2]:
        raise ValueError(f"xs needs at least one sequence and one time step; got shape {tuple(xs.shape)}.")
    n = _count(cell, stacked_params, one[2])
    xs_axis = 0 if len(xs.shape) == 4 else None
    if xs_axis == 0 and xs.shape[0] != n:
        raise ValueError(
            f"xs has {xs.shape[0]} networks on its leading axis (shape {tuple(xs.shape)}); stacked_params holds N={n}."
        )
    xs = jnp.asarray(xs)
    mask_axis = None
    if mask is not None:
        mask = jnp.asarray(mask)
        mask_axis = 0 if mask.ndim == 3 else None
        want = ((n,) if mask_axis == 0 else ()) + one[:2]
        if mask.shape != want:
            raise ValueError(
                f"mask must have shape (batch, time) = {one[:2]} or (N, batch, time) = {(n,) + one[:2]}; "
                f"got {tuple(mask.shape)}."
            )
        if not (mask.dtype == jnp.bool_ or jnp.issubdtype(mask.dtype, jnp.integer)):
            raise ValueError(f"mask must be boolean (True where a step is real); got dtype {mask.dtype}.")
        mask = mask if mask.dtype == jnp.bool_ else mask.astype(bool)
    s0_axis = None
    if initial_state is not None:
        s0 = cell.state_type(*(jnp.asarray(a, xs.dtype) for a in initial_state))
        ranks = {a.ndim for a in s0}
        if ranks not in ({2}, {3}):
            raise ValueError(
                f"initial_state leaves must all be shared (batch, ·) or all per network (N, batch, ·); "
                f"got shapes {[tuple(a.shape) for a in s0]}."
            )
        s0_axis = 0 if ranks == {3} else None
        lead = (n, one[0]) if s0_axis == 0 else (one[0],)
        if any(tuple(a.shape[: len(lead)]) != lead for a in s0):
            raise ValueError(f"initial_state leaves must start with {lead}; got shapes {[tuple(a.shape) for a in s0]}.")
        initial_state = s0
    return n, stacked_params, xs, xs_axis, initial_state, s0_axis, mask, mask_axis


def _check_on_nonfinite(on_nonfinite: str) -> None:
    checks.one_of("on_nonfinite", on_nonfinite, ("raise", "nan"))


# --- inside the program -------------------------------------------------------------------------


def _spread(tree, axis, n_pad: int, mesh):
    """Pad the network axis with copies of network 0 and shard it over the mesh (per-network trees)."""
    if axis is None or tree is None:
        return tree

    def leaf(a):
        if n_pad:
            a = jnp.concatenate([a, jnp.broadcast_to(a[:1], (n_pad,) + a.shape[1:])])
        if mesh is not None:
            a = jax.lax.with_sharding_constraint(a, NamedSharding(mesh, PartitionSpec(mesh.axis_names)))
        return a

    return jax.tree_util.tree_map(leaf, tree)


def _over_networks(core, n_pad, mesh, axes, params, xs, s0, mask):
    """``core(params, xs, s0, mask)`` for every network: padded, sharded, vmapped, unpadded."""
    xs_axis, s0_axis, mask_axis = axes
    args = (
        _spread(params, 0, n_pad, mesh),
        _spread(xs, xs_axis, n_pad, mesh),
        _spread(s0, s0_axis, n_pad, mesh),
        _spread(mask, mask_axis, n_pad, mesh),
    )
    out = jax.vmap(core, in_axes=(0, xs_axis, s0_axis, mask_axis))(*args)
    if n_pad:
        out = jax.tree_util.tree_map(lambda a: a[: a.shape[0] - n_pad], out)
    return out


def _state0(cell, xs, s0):
    return cell.initial_state(xs.shape[-3], xs.dtype) if s0 is None else s0


def _nan_where(ok, values):
    return jnp.where(ok.reshape(ok.shape + (1,) * (values.ndim - 1)), values, jnp.nan)


def _lyapunov_sweep(cell, k, warmup, method, go_backwards, n_pad, mesh, axes, params, xs, s0, mask, key):
    key = jax.random.PRNGKey(0) if key is None else key
    q0 = analysis.initial_frame(key, xs.shape[-3], cell.state_size, k, xs.dtype)
    s0 = _state0(cell, xs, s0)

    def core(p, x, s, m):
        return analysis.lyapunov_kernel(cell, k, warmup, method, go_backwards, p, x, s, m, None, q0)

    lam, count, finite, bad = _over_networks(core, n_pad, mesh, axes, params, xs, s0, mask)
    ok = jnp.all(finite, axis=(1, 2)) & ~jnp.any(bad, axis=(1, 2))
    return _nan_where(ok, -jnp.sort(-lam, axis=-1)), count, finite, bad


def _lag_sweep(cell, k, go_backwards, to_end, jacobians, n_pad, mesh, axes, params, xs, s0, mask):
    s0 = _state0(cell, xs, s0)

    def core(p, x, s, m):
        finite = analysis.finite_states(cell, p, x, s, m, None, go_backwards)
        if jacobians:
            out = bptt.step_jacobians(cell, p, x, s, m, go_backwards=go_backwards)
        else:
            out = analysis.lag_spectrum_kernel(cell, k, go_backwards, p, x, s, m, None)
            out = out[:, ::-1, 0] if to_end else out
        return out, finite

    out, finite = _over_networks(core, n_pad, mesh, axes, params, xs, s0, mask)
    return _nan_where(jnp.all(finite, axis=(1, 2)), out), finite


# --- after the program: the host-side check ----------------------------------------------------


def _first_bad(ok, check, on_nonfinite: str) -> None:
    """Raise for the first network whose ``ok`` is False, with ``check(n)``'s message."""
    ok = np.asarray(ok)
    if on_nonfinite == "nan" or ok.all():
        return
    n = int(np.argmin(ok))
    try:
        check(n)
    except ValueError as e:
        raise ValueError(f"network {n} (of N={ok.size}; the first with a non-finite value): {e}") from None
    raise ValueError(f"network {n} (of N={ok.size}) produced a non-finite value.")  # pragma: no cover


def _run(fn, static, mesh, n, **arrays):
    mesh = network_mesh(mesh)
    n_pad = 0 if mesh is None else (-n) % mesh.size
    run = compilation.jit_static(fn, n_pad=n_pad, mesh=mesh, **static)
    with analysis.highest_precision():
        return run(**arrays)


# --- the sweeps ---------------------------------------------------------------------------------


def lyapunov_spectra(
    cell,
    stacked_params,
    xs: jax.Array,
    initial_state=None,
    k: Optional[int] = None,
    warmup: int = 0,
    *,
    mask: Optional[jax.Array] = None,
    go_backwards: bool = False,
    method: str = "auto",
    key: Optional[jax.Array] = None,
    mesh=None,
    on_nonfinite: str = "raise",
) -> jax.Array:
    r"""The k largest Lyapunov exponents of each of N networks, ``(N, B, k)``, nats per step,
    largest first: ``[n]`` equals
    ``rc.analysis.lyapunov_spectrum(cell, params_n, xs_n, initial_state_n, k, warmup, ...)``.

    By the QR method (Benettin et al. 1980) with the same initial frame :math:`Q_0` (from ``key``,
    default ``PRNGKey(0)``) for every network:

    .. math::
        J^{(n)}_t Q^{(n)}_{t-1} = Q^{(n)}_t R^{(n)}_t, \qquad
        \lambda^{(n)}_i = \frac{1}{T - w} \sum_{t=w+1}^{T} \log |(R^{(n)}_t)_{ii}|.

    Args:
        cell: the cell all N networks share.
        stacked_params: the cell's params NamedTuple, every leaf with a leading axis N.
        xs: ``(B, T, F)`` shared or ``(N, B, T, F)`` per network.
        initial_state: None (zeros), or the cell's state with leaves ``(B, ·)`` or ``(N, B, ·)``.
        k, warmup, go_backwards, method, key: as :func:`rnncore.analysis.lyapunov_spectrum`.
        mask: ``(B, T)`` or ``(N, B, T)``.
        mesh: None, a ``jax.sharding.Mesh`` or a sequence of devices: shard the network axis.
        on_nonfinite: ``"raise"`` or ``"nan"`` (see the module docstring).

    Returns:
        ``(N, B, k)``.

    Raises:
        ValueError: a bad argument (before the run), a row with no counted step, or (with
            ``on_nonfinite="raise"``, after the run) the first network with a non-finite state or
            Jacobian, naming its index, step and batch row.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import cells, sweeps
        >>> cell = cells.LSTM(4)
        >>> stacked = jax.vmap(lambda key: cell.init(key, 2))(jax.random.split(jax.random.PRNGKey(0), 5))
        >>> sweeps.lyapunov_spectra(cell, stacked, jnp.ones((3, 20, 2)), k=2).shape
        (5, 3, 2)
    """
    _check_on_nonfinite(on_nonfinite)
    n, params, xs, xs_axis, s0, s0_axis, mask, mask_axis = _inputs(cell, stacked_params, xs, initial_state, mask)
    k, method = analysis.lyapunov_options(cell, xs.shape[-2], k, warmup, method)
    static = dict(
        cell=cell,
        k=k,
        warmup=int(warmup),
        method=method,
        go_backwards=bool(go_backwards),
        axes=(xs_axis, s0_axis, mask_axis),
    )
    lam, count, finite, bad = _run(_lyapunov_sweep, static, mesh, n, params=params, xs=xs, s0=s0, mask=mask, key=key)
    count = np.asarray(count)
    if (count == 0).any():
        m, b = np.argwhere(count == 0)[0]
        raise ValueError(
            f"network {m}: batch row {b} has no real (unmasked) step after warmup={warmup}; no exponent to average."
        )
    finite, bad = np.asarray(finite), np.asarray(bad)
    ok = finite.all(axis=(1, 2)) & ~bad.any(axis=(1, 2))
    _first_bad(ok, lambda m: analysis.check_lyapunov_run(finite[m], bad[m], count[m], warmup), on_nonfinite)
    return lam


def _lag_family(cell, stacked_params, xs, initial_state, mask, k, go_backwards, mesh, on_nonfinite, to_end, jacobians):
    _check_on_nonfinite(on_nonfinite)
    n, params, xs, xs_axis, s0, s0_axis, mask, mask_axis = _inputs(cell, stacked_params, xs, initial_state, mask)
    k = analysis.state_directions(k, cell.state_size)
    static = dict(
        cell=cell,
        k=k,
        go_backwards=bool(go_backwards),
        to_end=to_end,
        jacobians=jacobians,
        axes=(xs_axis, s0_axis, mask_axis),
    )
    out, finite = _run(_lag_sweep, static, mesh, n, params=params, xs=xs, s0=s0, mask=mask)
    finite = np.asarray(finite)
    _first_bad(finite.all(axis=(1, 2)), lambda m: analysis.raise_first_nonfinite(finite[m]), on_nonfinite)
    return out


def singular_values_by_lag(
    cell,
    stacked_params,
    xs: jax.Array,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    k: Optional[int] = None,
    *,
    go_backwards: bool = False,
    mesh=None,
    on_nonfinite: str = "raise",
) -> jax.Array:
    r""":math:`\log \sigma_i(\partial s^{(n)}_T/\partial s^{(n)}_{T-\ell})` for every network n and
    lag :math:`\ell = 1 \ldots T`, ``(N, B, T, k)``, largest first: ``[n]`` equals
    :func:`rnncore.analysis.singular_values_by_lag` for network n (arguments as in
    :func:`lyapunov_spectra`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import cells, sweeps
        >>> cell = cells.SimpleRNN(2, activation=None)
        >>> p = cell.init(jax.random.PRNGKey(0), 1)._replace(recurrent_kernel=jnp.eye(2))
        >>> stacked = jax.vmap(lambda g: p._replace(recurrent_kernel=g * p.recurrent_kernel))(jnp.array([0.5, 0.9]))
        >>> v = sweeps.singular_values_by_lag(cell, stacked, jnp.ones((1, 3, 1)), k=1)
        >>> [[round(a, 4) for a in row] for row in v[:, 0, :, 0].tolist()]  # lag * ln g
        [[-0.6931, -1.3863, -2.0794], [-0.1054, -0.2107, -0.3161]]
    """
    return _lag_family(
        cell,
        stacked_params,
        xs,
        initial_state,
        mask,
        k,
        go_backwards,
        mesh,
        on_nonfinite,
        to_end=False,
        jacobians=False,
    )


def log_norms_to_end(
    cell,
    stacked_params,
    xs: jax.Array,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    *,
    go_backwards: bool = False,
    mesh=None,
    on_nonfinite: str = "raise",
) -> jax.Array:
    r""":math:`\log \lVert \partial s^{(n)}_T/\partial s^{(n)}_{t-1} \rVert_2` for every network n
    and step t, ``(N, B, T)``: ``[n]`` equals
    ``rc.bptt.log_norms_to_end(rc.bptt.step_jacobians(cell, params_n, xs_n, ...))``, computed in
    the log domain (finite for any T).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import cells, sweeps
        >>> cell = cells.SimpleRNN(2, activation=None)
        >>> stacked = sweeps.stack_params([cell.init(jax.random.PRNGKey(i), 1) for i in range(3)])
        >>> sweeps.log_norms_to_end(cell, stacked, jnp.ones((4, 6, 1))).shape
        (3, 4, 6)
    """
    return _lag_family(
        cell, stacked_params, xs, initial_state, mask, 1, go_backwards, mesh, on_nonfinite, to_end=True, jacobians=False
    )


def step_jacobians(
    cell,
    stacked_params,
    xs: jax.Array,
    initial_state=None,
    mask: Optional[jax.Array] = None,
    *,
    go_backwards: bool = False,
    mesh=None,
    on_nonfinite: str = "raise",
) -> jax.Array:
    r"""Every per-step Jacobian :math:`J^{(n)}_t = \partial s^{(n)}_t/\partial s^{(n)}_{t-1}` of every
    network, ``(N, B, T, S, S)``: ``[n]`` equals :func:`rnncore.bptt.step_jacobians` for network n.
    For products through time reshape to ``(N * B, T, S, S)`` and call
    :func:`rnncore.bptt.jacobian_products` (memory: N·B·T·S² numbers).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from rnncore import cells, sweeps
        >>> cell = cells.LSTM(2)
        >>> stacked = sweeps.stack_params([cell.init(jax.random.PRNGKey(i), 3) for i in range(2)])
        >>> sweeps.step_jacobians(cell, stacked, jnp.ones((5, 4, 3))).shape
        (2, 5, 4, 4, 4)
    """
    return _lag_family(
        cell, stacked_params, xs, initial_state, mask, 1, go_backwards, mesh, on_nonfinite, to_end=False, jacobians=True
    )
