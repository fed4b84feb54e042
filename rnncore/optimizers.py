r"""Optax optimizers whose numbers equal Keras 3's optimizers.

Each function returns an :class:`optax.GradientTransformation` that takes Keras's argument names and
defaults and reproduces Keras 3's ``apply_gradients`` step for step, in float32, to the last few ulps:

* :func:`adam`, :func:`adamw`, :func:`rmsprop`, :func:`sgd`, :func:`adagrad`.
* Every one accepts ``clipnorm``, ``global_clipnorm`` and ``clipvalue`` (at most one of them) and
  ``weight_decay`` (Keras's decoupled decay, which every Keras 3 optimizer accepts; ``adamw`` turns it
  on by default).

Order of one step, as Keras does it: (1) clip the gradients, (2) decay the weights
``w <- w - w*weight_decay*lr``, (3) the optimizer's own update, (4) increment the step count.

``learning_rate`` is a non-negative float or an optax schedule, a callable of the step count. The
count the schedule sees **starts at 0** on the first update, exactly like Keras's
``optimizer.iterations`` (which a Keras ``LearningRateSchedule`` receives). Adam's bias correction
uses ``t = count + 1``, as Keras does. Weight decay uses the same (scheduled) learning rate.

The ``update`` function needs ``params`` only when ``weight_decay`` is set.

Where the same names differ elsewhere
-------------------------------------

=================  ==============================  ===============================  ==============================
name               Keras 3 (this module)           optax                            PyTorch
=================  ==============================  ===============================  ==============================
Adam ε placement   ε-hat form:                     ``m̂/(sqrt(v̂)+ε)``                 ``m̂/(sqrt(v̂)+ε)``
                   ``α_t m/(sqrt(v)+ε)``,
                   ``α_t = lr sqrt(1-β2^t)``
                   ``/(1-β1^t)``
Adam ε default     ``1e-7``                        ``1e-8`` (``eps``)               ``1e-8`` (``eps``)
AdamW decay        ``w -= lr·wd·w`` before step,   ``wd·w`` added to the scaled     ``w *= 1 - lr·wd`` before step,
                   default ``wd=0.004``            update, default ``1e-4``         default ``1e-2``
RMSprop ε          inside the root:                outside: ``g/(sqrt(v)+ε)``,      outside: ``g/(sqrt(v)+ε)``,
                   ``g/sqrt(v+ε)``, ``ε=1e-7``,    ``eps=1e-8``, ``decay=0.9``      ``eps=1e-8``, ``alpha=0.99``
                   ``rho=0.9``
RMSprop momentum   ``b = μb + lr·g/sqrt(...)``     ``b = μb + g/(...)``, then ×lr   ``b = μb + g/(...)``, then ×lr
SGD momentum       ``m = μm - lr·g; w += m``       ``m = g + μm; w -= lr·m``        ``b = μb + g; w -= lr·b``
                   (lr inside the velocity)        (same only for constant lr)      (same only for constant lr)
SGD nesterov       ``w += μm - lr·g``              ``w -= lr(g + μm)``              ``w -= lr(g + μb)``
Adagrad            accumulator starts at ``0.1``,  starts at ``0.1``,               starts at ``0``,
                   ``g/sqrt(acc+ε)``, ``ε=1e-7``   ``g/sqrt(acc+ε)``, ``ε=1e-7``    ``g/(sqrt(acc)+ε)``, ``ε=1e-10``
clipnorm           **each variable** clipped to    ``clip_by_global_norm`` is       ``clip_grad_norm_`` is global:
                   its own norm;                   global                           equals ``global_clipnorm``
                   ``global_clipnorm`` is the
                   global form
=================  ==============================  ===============================  ==============================

References: Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization" (the ε-hat form is the
formula just before their Section 2.1); Loshchilov & Hutter 2019, "Decoupled Weight Decay
Regularization"; Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
networks" (gradient norm clipping); Tieleman & Hinton 2012, COURSERA lecture 6.5 (RMSprop);
Duchi, Hazan & Singer 2011, "Adaptive Subgradient Methods" (Adagrad).

>>> import jax.numpy as jnp, optax
>>> from rnncore import optimizers
>>> params = {"w": jnp.array([1.0, -2.0])}
>>> opt = optimizers.sgd(learning_rate=0.1, momentum=0.5)
>>> state = opt.init(params)
>>> updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, state, params)
>>> optax.apply_updates(params, updates)["w"]
Array([ 0.9, -2.1], dtype=float32)
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import checks

__all__ = ["adam", "adamw", "rmsprop", "sgd", "adagrad", "KerasOptState", "KerasTransformation", "get", "OPTIMIZERS"]


class KerasOptState(NamedTuple):
    """State of every optimizer here: the step count (Keras's ``iterations``) and the slot pytrees."""

    count: jax.Array  # type: ignore[assignment]  # Keras's name; shadows tuple.count
    slots: tuple


class KerasTransformation(optax.GradientTransformation):
    """The ``optax.GradientTransformation`` these functions return. Two built by the same function
    with equal arguments compare (and hash) equal, so :func:`rnncore.fit` reuses the training step
    it compiled for the first; otherwise an ordinary ``(init, update)`` pair."""

    def _key(self):
        return getattr(self, "config", None) or (id(self.init), id(self.update))

    def __eq__(self, other):
        return isinstance(other, KerasTransformation) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


def _configured(factory):
    """Tag what ``factory`` returns with its name and bound arguments (None when one is unhashable)."""
    signature = inspect.signature(factory)

    @functools.wraps(factory)
    def build(*args, **kwargs):
        transformation = factory(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        out = KerasTransformation(transformation.init, transformation.update)
        config = (factory.__name__, tuple(bound.arguments.items()))
        try:
            hash(config)
        except TypeError:
            config = None
        out.config = config
        return out

    return build


# ----------------------------------------------------------------------------------------------------------------
# argument checks, in Keras's wording ("`name` must be ... Received: name=value")


def _check_learning_rate(learning_rate):
    if callable(learning_rate):
        return
    if not checks.is_real(learning_rate):
        raise ValueError(
            f"`learning_rate` must be a float or a schedule (a callable of the step count). "
            f"Received: learning_rate={learning_rate!r}"
        )
    if not learning_rate >= 0:
        raise ValueError(f"`learning_rate` must be >= 0. Received: learning_rate={learning_rate}")


def _check_range(name, value, low, high, *, high_inclusive=False):
    if not checks.is_real(value):
        raise ValueError(f"`{name}` must be a float. Received: {name}={value!r}")
    ok = low <= value <= high if high_inclusive else low <= value < high
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(f"`{name}` must be in [{low}, {high}{bracket}. Received: {name}={value}")


def _check_nonneg(name, value):
    if not checks.is_real(value) or not value >= 0:
        raise ValueError(f"`{name}` must be a float >= 0. Received: {name}={value!r}")


def _check_clipping(clipnorm, global_clipnorm, clipvalue):
    given = {
        k: v
        for k, v in (("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm), ("clipvalue", clipvalue))
        if v is not None
    }
    if len(given) > 1:
        raise ValueError(
            "Only one of `clipnorm`, `global_clipnorm` and `clipvalue` can be set. Received: "
            + ", ".join(f"{k}={v}" for k, v in given.items())
        )
    for name, value in given.items():
        if not checks.is_real(value) or not value > 0:
            raise ValueError(f"`{name}` must be a float > 0 (or None). Received: {name}={value!r}")


# ----------------------------------------------------------------------------------------------------------------
# clipping, in Keras's arithmetic


def _clip_each(grads, clipnorm):
    """Each gradient scaled to norm at most ``clipnorm`` on its own (Keras ``clipnorm``)."""

    def one(g):
        l2sum = jnp.sum(jnp.square(g), keepdims=True)
        pred = l2sum > 0
        l2norm = jnp.where(pred, jnp.sqrt(jnp.where(pred, l2sum, jnp.ones_like(l2sum))), l2sum)
        return (g * clipnorm) / jnp.maximum(l2norm, clipnorm)

    return jax.tree_util.tree_map(one, grads)


def _clip_global(grads, clipnorm):
    """All gradients scaled together so their global norm is at most ``clipnorm`` (Keras ``global_clipnorm``)."""
    leaves, treedef = jax.tree_util.tree_flatten(grads)
    if not leaves:
        return grads
    norm = jnp.sqrt(jnp.sum(jnp.stack([jnp.sum(jnp.square(g)) for g in leaves])))
    scale = clipnorm * jnp.minimum(1.0 / norm, 1.0 / clipnorm) + (norm - norm)
    return jax.tree_util.tree_unflatten(treedef, [g * scale for g in leaves])


def _clip(grads, clipnorm, global_clipnorm, clipvalue):
    if clipnorm is not None:
        return _clip_each(grads, clipnorm)
    if global_clipnorm is not None:
        return _clip_global(grads, global_clipnorm)
    if clipvalue is not None:
        return jax.tree_util.tree_map(lambda g: jnp.clip(g, -clipvalue, clipvalue), grads)
    return grads


# ----------------------------------------------------------------------------------------------------------------
# the common frame: clip, decay, step, count


def _transformation(learning_rate, weight_decay, clipnorm, global_clipnorm, clipvalue, n_slots, init_slot, step):
    """``init_slot(p, k)`` makes slot ``k`` for parameter ``p``; ``step(g, slots, lr, t)`` returns
    ``(delta, new_slots)`` for one variable, where ``t`` is the float 1-based step."""
    _check_learning_rate(learning_rate)
    _check_clipping(clipnorm, global_clipnorm, clipvalue)
    if weight_decay is not None:
        _check_nonneg("weight_decay", weight_decay)

    def init_fn(params):
        slots = tuple(jax.tree_util.tree_map(lambda p, k=k: init_slot(p, k), params) for k in range(n_slots))
        return KerasOptState(count=jnp.zeros([], jnp.int32), slots=slots)

    def update_fn(grads, state, params=None):
        if weight_decay is not None and params is None:
            raise ValueError("`params` must be given to `update` when `weight_decay` is set.")
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        grads = _clip(grads, clipnorm, global_clipnorm, clipvalue)
        g_leaves, treedef = jax.tree_util.tree_flatten(grads)
        slot_leaves = [treedef.flatten_up_to(s) for s in state.slots]
        p_leaves = treedef.flatten_up_to(params) if params is not None else [None] * len(g_leaves)
        deltas, new_slots = [], [[] for _ in range(n_slots)]
        for i, (g, p) in enumerate(zip(g_leaves, p_leaves)):
            dtype = p.dtype if p is not None else g.dtype
            lr_i = jnp.asarray(lr).astype(dtype)
            g = g.astype(dtype)
            t = (state.count + 1).astype(dtype)
            delta, slots_i = step(g, tuple(s[i] for s in slot_leaves), lr_i, t)
            if weight_decay is not None:
                # Keras's two assignments, decay then step, rounded as Keras rounds them; the difference
                # back to p is then exact wherever the new value is within a factor 2 of p (Sterbenz).
                decayed = p - p * jnp.asarray(weight_decay, dtype) * lr_i
                delta = (decayed + delta) - p
            deltas.append(delta)
            for k in range(n_slots):
                new_slots[k].append(slots_i[k])
        slots = tuple(jax.tree_util.tree_unflatten(treedef, s) for s in new_slots)
        return jax.tree_util.tree_unflatten(treedef, deltas), KerasOptState(count=state.count + 1, slots=slots)

    return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------------------------------------------
# the optimizers


@_configured
def adam(
    learning_rate=0.001,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-7,
    amsgrad=False,
    weight_decay=None,
    clipnorm=None,
    global_clipnorm=None,
    clipvalue=None,
) -> optax.GradientTransformation:
    r"""Keras 3 ``Adam``: the ε-hat form of Kingma & Ba (2015).

    With :math:`t` the 1-based step, :math:`m \mathrel{+}= (g-m)(1-\beta_1)`,
    :math:`v \mathrel{+}= (g^2-v)(1-\beta_2)`, (amsgrad: :math:`\hat v = \max(\hat v, v)` replaces
    :math:`v` below), :math:`\alpha = \mathrm{lr}\sqrt{1-\beta_2^t}/(1-\beta_1^t)` and
    :math:`w \mathrel{-}= \alpha m/(\sqrt{v}+\epsilon)`.

    >>> import jax.numpy as jnp
    >>> opt = adam(learning_rate=0.1)
    >>> p = jnp.array([1.0]); u, s = opt.update(jnp.array([3.0]), opt.init(p))
    >>> round(float(u[0]), 5)  # the first step is about -lr * sign(g)
    -0.1
    """
    _check_range("beta_1", beta_1, 0.0, 1.0)
    _check_range("beta_2", beta_2, 0.0, 1.0)
    _check_nonneg("epsilon", epsilon)
    if not isinstance(amsgrad, bool):
        raise ValueError(f"`amsgrad` must be a bool. Received: amsgrad={amsgrad!r}")

    def step(g, slots, lr, t):
        m, v = slots[0], slots[1]
        b1_power = jnp.power(jnp.asarray(beta_1, g.dtype), t)
        b2_power = jnp.power(jnp.asarray(beta_2, g.dtype), t)
        alpha = lr * jnp.sqrt(1 - b2_power) / (1 - b1_power)
        m = m + (g - m) * (1 - beta_1)
        v = v + (jnp.square(g) - v) * (1 - beta_2)
        new = (m, v)
        if amsgrad:
            v = jnp.maximum(slots[2], v)
            new = (m, new[1], v)
        return -((m * alpha) / (jnp.sqrt(v) + epsilon)), new

    return _transformation(
        learning_rate,
        weight_decay,
        clipnorm,
        global_clipnorm,
        clipvalue,
        3 if amsgrad else 2,
        lambda p, k: jnp.zeros_like(p),
        step,
    )


@_configured
def adamw(
    learning_rate=0.001,
    weight_decay=0.004,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-7,
    amsgrad=False,
    clipnorm=None,
    global_clipnorm=None,
    clipvalue=None,
) -> optax.GradientTransformation:
    r"""Keras 3 ``AdamW``: :func:`adam` with decoupled weight decay (Loshchilov & Hutter 2019).

    Before the Adam step (and after clipping), :math:`w \mathrel{-}= w\cdot\mathrm{wd}\cdot\mathrm{lr}`;
    the decay is multiplied by the learning rate, as in Keras (optax's ``adamw`` adds it to the update
    before scaling by the learning rate, PyTorch multiplies by ``1 - lr·wd``: the same first order).
    ``params`` must be passed to ``update``.

    >>> import jax.numpy as jnp
    >>> opt = adamw(learning_rate=0.1, weight_decay=0.5)
    >>> p = jnp.array([2.0]); u, s = opt.update(jnp.array([3.0]), opt.init(p), p)
    >>> round(float(u[0]), 5)  # -(2*0.5*0.1) - 0.1
    -0.2
    """
    if weight_decay is None:
        raise ValueError("`weight_decay` must be a float for adamw. Received: weight_decay=None")
    return adam(
        learning_rate=learning_rate,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        amsgrad=amsgrad,
        weight_decay=weight_decay,
        clipnorm=clipnorm,
        global_clipnorm=global_clipnorm,
        clipvalue=clipvalue,
    )


@_configured
def rmsprop(
    learning_rate=0.001,
    rho=0.9,
    momentum=0.0,
    epsilon=1e-7,
    centered=False,
    weight_decay=None,
    clipnorm=None,
    global_clipnorm=None,
    clipvalue=None,
) -> optax.GradientTransformation:
    r"""Keras 3 ``RMSprop`` (Tieleman & Hinton 2012), ε **inside** the square root.

    :math:`v = \rho v + (1-\rho)g^2`; centered: :math:`a = \rho a + (1-\rho) g`, denominator
    :math:`v - a^2 + \epsilon`, else :math:`v + \epsilon`; increment :math:`\Delta = \mathrm{lr}\,g/\sqrt{\cdot}`.
    With momentum :math:`b = \mu b + \Delta`, :math:`w \mathrel{-}= b`; else :math:`w \mathrel{-}= \Delta`.

    >>> import jax.numpy as jnp
    >>> opt = rmsprop(learning_rate=0.1, epsilon=0.0)
    >>> p = jnp.array([1.0]); u, s = opt.update(jnp.array([2.0]), opt.init(p))
    >>> float(u[0])  # -0.1*2/sqrt(0.1*4)
    -0.3162277638912201
    """
    _check_range("rho", rho, 0.0, 1.0, high_inclusive=True)
    _check_range("momentum", momentum, 0.0, 1.0, high_inclusive=True)
    _check_nonneg("epsilon", epsilon)
    if not isinstance(centered, bool):
        raise ValueError(f"`centered` must be a bool. Received: centered={centered!r}")
    use_momentum = momentum > 0
    names = ["velocity"] + (["momentum"] if use_momentum else []) + (["average_gradient"] if centered else [])

    def step(g, slots, lr, t):
        s = dict(zip(names, slots))
        s["velocity"] = rho * s["velocity"] + (1 - rho) * jnp.square(g)
        if centered:
            s["average_gradient"] = rho * s["average_gradient"] + (1 - rho) * g
            denominator = s["velocity"] - jnp.square(s["average_gradient"]) + epsilon
        else:
            denominator = s["velocity"] + epsilon
        increment = (lr * g) / jnp.sqrt(denominator)
        if use_momentum:
            s["momentum"] = momentum * s["momentum"] + increment
            delta = -s["momentum"]
        else:
            delta = -increment
        return delta, tuple(s[n] for n in names)

    return _transformation(
        learning_rate,
        weight_decay,
        clipnorm,
        global_clipnorm,
        clipvalue,
        len(names),
        lambda p, k: jnp.zeros_like(p),
        step,
    )


@_configured
def sgd(
    learning_rate=0.01,
    momentum=0.0,
    nesterov=False,
    weight_decay=None,
    clipnorm=None,
    global_clipnorm=None,
    clipvalue=None,
) -> optax.GradientTransformation:
    r"""Keras 3 ``SGD``: the learning rate sits inside the velocity.

    :math:`m = \mu m - \mathrm{lr}\,g`, then :math:`w \mathrel{+}= m` (nesterov:
    :math:`w \mathrel{+}= \mu m - \mathrm{lr}\,g`); without momentum :math:`w \mathrel{-}= \mathrm{lr}\,g`.
    For a changing learning rate this differs from optax's and PyTorch's ``m = \mu m + g; w -= lr m``.

    >>> import jax.numpy as jnp
    >>> opt = sgd(learning_rate=0.5)
    >>> p = jnp.array([1.0]); u, s = opt.update(jnp.array([2.0]), opt.init(p))
    >>> u
    Array([-1.], dtype=float32)
    """
    _check_range("momentum", momentum, 0.0, 1.0, high_inclusive=True)
    if not isinstance(nesterov, bool):
        raise ValueError(f"`nesterov` must be a bool. Received: nesterov={nesterov!r}")
    if nesterov and momentum == 0:
        raise ValueError("`nesterov` needs `momentum` > 0. Received: nesterov=True, momentum=0.0")
    use_momentum = momentum != 0

    def step(g, slots, lr, t):
        if not use_momentum:
            return -(g * lr), ()
        mu = jnp.asarray(momentum, g.dtype)
        m = slots[0] * mu - g * lr
        delta = m * mu - g * lr if nesterov else m
        return delta, (m,)

    return _transformation(
        learning_rate,
        weight_decay,
        clipnorm,
        global_clipnorm,
        clipvalue,
        1 if use_momentum else 0,
        lambda p, k: jnp.zeros_like(p),
        step,
    )


@_configured
def adagrad(
    learning_rate=0.001,
    initial_accumulator_value=0.1,
    epsilon=1e-7,
    weight_decay=None,
    clipnorm=None,
    global_clipnorm=None,
    clipvalue=None,
) -> optax.GradientTransformation:
    r"""Keras 3 ``Adagrad`` (Duchi et al. 2011).

    :math:`a \mathrel{+}= g^2` (starting from ``initial_accumulator_value``), then
    :math:`w \mathrel{-}= \mathrm{lr}\,g/\sqrt{a+\epsilon}`.

    >>> import jax.numpy as jnp
    >>> opt = adagrad(learning_rate=1.0, initial_accumulator_value=0.0, epsilon=0.0)
    >>> p = jnp.array([1.0]); u, s = opt.update(jnp.array([-3.0]), opt.init(p))
    >>> u
    Array([1.], dtype=float32)
    """
    _check_nonneg("initial_accumulator_value", initial_accumulator_value)
    _check_nonneg("epsilon", epsilon)

    def step(g, slots, lr, t):
        acc = slots[0] + jnp.square(g)
        return -((lr * g) / jnp.sqrt(acc + epsilon)), (acc,)

    return _transformation(
        learning_rate,
        weight_decay,
        clipnorm,
        global_clipnorm,
        clipvalue,
        1,
        lambda p, k: jnp.full_like(p, initial_accumulator_value),
        step,
    )


# ----------------------------------------------------------------------------------------------------------------
# by name


#: Keras's optimizer names, each with the function above that builds it.
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": adam,
    "adamw": adamw,
    "rmsprop": rmsprop,
    "sgd": sgd,
    "adagrad": adagrad,
}


def get(identifier: Any) -> optax.GradientTransformation:
    """An optax transformation (returned as is), or a Keras optimizer name (case-insensitive) built
    with Keras's defaults: ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"sgd"``, ``"adagrad"``.

    >>> from rnncore import optimizers
    >>> optimizers.get("Adam") == optimizers.adam()
    True
    >>> optimizers.get("adamm")
    Traceback (most recent call last):
    ...
    ValueError: optimizer='adamm'; expected an optax GradientTransformation or one of 'adam', 'adamw', \
'rmsprop', 'sgd', 'adagrad'.
    """
    if isinstance(identifier, str):
        name = identifier.lower()
        if name not in OPTIMIZERS:
            raise ValueError(
                f"optimizer={identifier!r}; expected an optax GradientTransformation or one of "
                f"{', '.join(map(repr, OPTIMIZERS))}."
            )
        return OPTIMIZERS[name]()
    if isinstance(identifier, optax.GradientTransformation) or (
        hasattr(identifier, "init") and hasattr(identifier, "update")
    ):
        return identifier
    raise ValueError(f"optimizer must be an optax GradientTransformation or a name; got {type(identifier).__name__}.")
