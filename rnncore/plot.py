r"""Pictures of what :mod:`rnncore.analysis` measures: gradient flow through time and depth, singular
values by lag, Lyapunov spectra, gate saturation, training curves, and the four-panel ``diagnose``
figure.

Every function takes the numbers an analysis returned (nothing is recomputed), draws them into
``ax`` (a matplotlib ``Axes``) when one is given or into a new ``matplotlib.figure.Figure``
otherwise, saves the figure to ``path`` when one is given (PNG, PDF, SVG, … by the extension) and
returns the figure. A new figure is built directly on matplotlib's Agg canvas, never through
``pyplot``: nothing is registered in pyplot's global list of figures, nothing leaks, and it works
without a display. A returned figure shows itself in a notebook; to show one in a window, draw
into pyplot's axes (``fig, ax = plt.subplots(); rc.plot.gradient_flow(flow, ax=ax); plt.show()``).

matplotlib is imported inside the functions only: ``import rnncore`` does not import it.

Colours name cell types, the same in every picture: :data:`CELL_COLORS` (SimpleRNN, LSTM, GRU,
LayerNormLSTM, from the Okabe–Ito colour-blind-safe palette). A label or layer name is matched
to a cell type by name (``"LSTM"``, ``"1:LSTM"``, ``"Bidirectional(GRU).forward"``, ``"gru"``);
other labels get the remaining colours in turn.

``title=None`` gives each picture a default title; ``title=""`` gives none.

Example:
    >>> import jax, jax.numpy as jnp
    >>> import rnncore as rc
    >>> model = rc.Sequential([rc.layers.SimpleRNN(4, return_sequences=True),
    ...                        rc.layers.LSTM(3), rc.layers.Dense(1)])
    >>> params = model.init(jax.random.PRNGKey(0), (6, 2))
    >>> flow = rc.analysis.gradient_flow(model, params, jnp.ones((2, 6, 2)), jnp.zeros((2, 1)))
    >>> fig = rc.plot.gradient_flow(flow, lags=True)   # one line per layer, log y axis
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['0:SimpleRNN', '1:LSTM']
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np

from . import analysis, cells, checks
from .history import History

__all__ = [
    "CELL_COLORS",
    "cell_type",
    "gradient_flow",
    "gradient_heatmap",
    "singular_values_by_lag",
    "lyapunov_spectrum",
    "gate_saturation",
    "training_curves",
    "diagnose",
]

_CELL_PALETTE = ("#D55E00", "#0072B2", "#009E73", "#CC79A7")
CELL_COLORS = dict(zip(cells.CELL_TYPES, _CELL_PALETTE))
"""One colour per cell type of :data:`rnncore.cells.CELL_TYPES`, in its order (Okabe & Ito's
colour-blind-safe palette): SimpleRNN vermilion, LSTM blue, GRU green, LayerNormLSTM pink. A cell
type beyond the palette is drawn like any other label, in the remaining colours."""

#: Labels that name a cell type by another name (a Keras ``RNN`` layer wraps a SimpleRNN cell here).
_CELL_TYPE_ALIASES = {"rnn": "SimpleRNN"}

_OTHER_COLORS = ("#E69F00", "#56B4E9", "#000000", "#999999", "#F0E442", "#8C564B")
_LINESTYLES = ("-", "--", ":", "-.")
_REFERENCE = "reference"  # gid of guide lines (zero line), so that data lines can be told apart
_DIVERGED = "diverged"  # gid of the ✕ marking a diverged run

# --- figure plumbing ------------------------------------------------------------------------------


def _show_in_notebooks() -> None:
    """In an IPython kernel, display a returned Figure as a PNG even when pyplot (whose inline
    backend registers that) was never imported."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None or getattr(shell, "display_formatter", None) is None:
        return
    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure

    png = shell.display_formatter.formatters["image/png"]
    if Figure in png.type_printers:
        return
    png.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


def _axes(ax, figsize=(6.4, 4.2)):
    """``(figure, axes)``: ``ax`` and its figure, or a new Agg-backed Figure with one Axes."""
    from matplotlib.axes import Axes

    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        FigureCanvasAgg(fig)  # Agg: no display needed, and pyplot never sees the figure
        _show_in_notebooks()
        return fig, fig.add_subplot()
    if not isinstance(ax, Axes):
        raise ValueError(f"ax={ax!r}; expected a matplotlib Axes (or None for a new figure).")
    try:
        fig = ax.get_figure(root=True)  # the top figure where ax sits in a SubFigure
    except TypeError:  # matplotlib < 3.10
        fig = ax.figure
    return fig, ax


def _integer_x(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps, lags, indices and epochs are whole


def _finish(fig, ax, title, default_title, path):
    ax.set_title(default_title if title is None else title)
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path={path!r}; expected a file name such as 'flow.png' or 'flow.pdf'.")
        fig.savefig(path, dpi=150)
    return fig


def cell_type(name) -> Optional[str]:
    """The cell type a label or layer name refers to, or None.

    Example:
        >>> from rnncore import plot
        >>> [plot.cell_type(n) for n in ("1:LSTM", "gru", "2:Bidirectional(SimpleRNN).backward", "mine")]
        ['LSTM', 'GRU', 'SimpleRNN', None]
    """
    s = "".join(ch for ch in str(name).lower() if ch.isalnum())
    # The longest names first, so that "LayerNormLSTM" is not read as "LSTM"; the aliases last.
    by_length = sorted(cells.CELL_TYPES, key=len, reverse=True)
    for key, canonical in [(n.lower(), n) for n in by_length] + list(_CELL_TYPE_ALIASES.items()):
        if key in s:
            return canonical
    return None


def _colors(names, hints=None) -> list:
    """One distinct colour per name: the cell type's colour for the first name of each type
    (``hints[i]`` is a fallback type when ``names[i]`` names none), other colours in turn for the rest."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    # tab20 is a ListedColormap, which has .colors; matplotlib's stubs type the registry's items as Colormap.
    tab20 = colormaps["tab20"].colors  # type: ignore[attr-defined]
    palette = list(_OTHER_COLORS) + list(CELL_COLORS.values()) + [to_hex(c) for c in tab20]
    taken, out = set(), []
    for i, name in enumerate(names):
        kind = cell_type(name) or (hints[i] if hints else None)
        color = CELL_COLORS.get(kind) if kind is not None else None
        if color is None or color in taken:  # past the palette's 30 colours, they repeat
            color = next((c for c in palette if c not in taken), palette[i % len(palette)])
        taken.add(color)
        out.append(color)
    return out


def _row_styles(names) -> list:
    """``(colour, linestyle)`` per layer row: the cell type's colour, rows of the same colour apart by
    line style (deeper layers dashed, dotted, …)."""
    seen: dict[str, int] = {}
    unknown: dict[str, str] = {}
    out, spare = [], iter(_OTHER_COLORS * 8)
    for name in names:
        kind = cell_type(name)
        color = (CELL_COLORS.get(kind) if kind is not None else None) or unknown.setdefault(name, next(spare))
        n = seen.get(color, 0)
        seen[color] = n + 1
        out.append((color, _LINESTYLES[n % len(_LINESTYLES)]))
    return out


def _row_label(label: str, row: str) -> str:
    """``"LSTM, layer 1"`` for row ``"1:LSTM"`` of a model labelled ``"LSTM"``; else ``"label row"``."""
    index, _, kind = row.partition(":")
    if kind and kind == cell_type(kind) and cell_type(label) == kind:
        return f"{label}, layer {index}"
    return f"{label} {row}"


def _named(values, labels, what: str) -> tuple:
    """``(names, items)`` from one result, a dict ``{label: result}``, or a list of results with
    ``labels`` (a list is one result when no labels come with it)."""
    if isinstance(values, Mapping):
        if labels is not None:
            raise ValueError(
                f"{what}: labels={labels!r} given with a dict of results; the dict's keys are the "
                "labels, so pass one or the other."
            )
        if not values:
            raise ValueError(f"{what}: the dict of results is empty.")
        return [str(k) for k in values], list(values.values())
    if isinstance(values, (list, tuple)) and labels is not None and not isinstance(labels, str):
        labels = list(labels)
        if len(labels) != len(values):
            raise ValueError(f"{what}: {len(values)} results but {len(labels)} labels; give one label per result.")
        if not values:
            raise ValueError(f"{what}: no results to draw.")
        return [str(k) for k in labels], list(values)
    names: list[Optional[str]]
    if labels is None:
        names = [None]
    elif isinstance(labels, str):
        names = [labels]
    elif isinstance(labels, Sequence) and len(labels) == 1:
        names = [str(labels[0])]
    else:
        raise ValueError(
            f"{what}: labels={labels!r} for a single result; give one label (a string), or pass a "
            "list of results with one label each, or a dict {label: result}."
        )
    return names, [values]


def _real_array(value, what: str, ndims) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: expected a numeric array; got {type(value).__name__} ({e}).") from None
    if a.ndim not in ndims or a.size == 0:
        shapes = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{what}: expected a non-empty {shapes} array; got shape {a.shape}.")
    return a


# --- gradient flow ----------------------------------------------------------------------------------


def _check_flow(flow, what: str):
    if not isinstance(flow, analysis.GradientFlow):
        raise ValueError(
            f"{what}: expected an rc.analysis.GradientFlow (what rc.analysis.gradient_flow returns); "
            f"got {type(flow).__name__}."
        )
    norms = np.asarray(flow.state_norms, np.float64)
    if norms.ndim != 3 or norms.shape[0] != len(flow.layer_names) or norms.size == 0:
        raise ValueError(
            f"{what}: flow.state_norms has shape {norms.shape}; expected (R, B, T) with "
            f"R = {len(flow.layer_names)} layer names."
        )
    return norms.mean(axis=1)  # (R, T): the batch mean


def gradient_flow(flow, *, lags: bool = False, ax=None, path=None, title=None):
    r"""The gradient reaching each step, :math:`\lVert\partial L/\partial s_t\rVert` (batch mean),
    against step t — or against the lag :math:`T - t` with ``lags=True`` — on a log axis, one line
    per recurrent layer (``flow.layer_names``).

    Vanishing gradients are straight lines falling towards early steps (a slope of the largest
    Lyapunov exponent, in e-folds per step), exploding ones rising (Pascanu, Mikolov & Bengio
    2013, Fig. 5 draws exactly this).

    Args:
        flow: an :class:`rnncore.analysis.GradientFlow`, or a dict ``{label: GradientFlow}`` to
            compare models on one axes (e.g. ``{"SimpleRNN": f1, "LSTM": f2, "GRU": f3}``).
        lags: x is the lag :math:`T - t` (0 at the last step) instead of the step t.

    Each line's y data is ``flow.state_norms.mean(axis=1)[r]`` (reversed with ``lags=True``, so
    that x increases). Colour: the cell type (per label for a dict); several layers of one type
    differ by line style.

    Example:
        >>> import numpy as np
        >>> import rnncore as rc
        >>> norms = np.exp(-0.3 * np.arange(10.0))[::-1] * np.ones((1, 2, 10))   # (R, B, T)
        >>> flow = rc.analysis.GradientFlow(norms, norms, ("0:SimpleRNN",), (0,), (False,), 0.0)
        >>> ax = rc.plot.gradient_flow(flow, lags=True).axes[0]
        >>> ax.get_yscale(), ax.get_lines()[0].get_xdata()[:3].tolist()
        ('log', [0, 1, 2])
    """
    fig, ax = _axes(ax)
    if isinstance(flow, Mapping):
        if not flow:
            raise ValueError("gradient_flow: the dict of GradientFlows is empty.")
        labels = [str(k) for k in flow]
        means = [_check_flow(f, f"gradient_flow[{k!r}]") for k, f in flow.items()]
        hints = []
        for f in flow.values():
            kinds = {cell_type(n) for n in f.layer_names}
            hints.append(kinds.pop() if len(kinds) == 1 else None)
        colors = _colors(labels, hints)
        series = []
        for label, f, mean, color in zip(labels, flow.values(), means, colors):
            for r, name in enumerate(f.layer_names):
                name_ = label if len(f.layer_names) == 1 else _row_label(label, name)
                series.append((name_, mean[r], color, _LINESTYLES[r % len(_LINESTYLES)]))
    else:
        mean = _check_flow(flow, "gradient_flow")
        series = [
            (name, mean[r], c, ls)
            for r, (name, (c, ls)) in enumerate(zip(flow.layer_names, _row_styles(flow.layer_names)))
        ]
    for name, y, color, ls in series:
        T = y.shape[0]
        x, y = (np.arange(T), y[::-1]) if lags else (np.arange(1, T + 1), y)
        ax.plot(x, np.where(y > 0, y, np.nan), color=color, linestyle=ls, linewidth=1.8, label=name)
    ax.set_yscale("log")
    _integer_x(ax)
    ax.set_xlabel(r"lag $T - t$ (steps)" if lags else r"step $t$")
    ax.set_ylabel(r"$\|\partial L/\partial s_t\|$ (batch mean)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(fig, ax, title, "Gradient reaching each step", path)


def gradient_heatmap(flow, *, ax=None, path=None, title=None):
    r"""Layer × time heatmap of :math:`\log_{10}\lVert\partial L/\partial s_t\rVert` (batch mean):
    one row per recurrent layer (``flow.layer_names``, the first layer on top), one column per
    step, with a colorbar. Vanishing through time shows as a horizontal fade, through depth as a
    vertical one.

    The image's data is ``log10(flow.state_norms.mean(axis=1))`` (a zero norm is left blank).

    Example:
        >>> import numpy as np
        >>> import rnncore as rc
        >>> norms = np.ones((2, 3, 8))                                     # (R, B, T)
        >>> flow = rc.analysis.GradientFlow(norms, norms, ("0:LSTM", "1:GRU"), (0, 1), (False, False), 0.0)
        >>> rc.plot.gradient_heatmap(flow).axes[0].images[0].get_array().shape
        (2, 8)
    """
    if isinstance(flow, Mapping):
        raise ValueError(
            "gradient_heatmap draws one GradientFlow; got a dict. Draw each model into its own "
            "axes (ax=...), or compare models with gradient_flow({label: flow})."
        )
    mean = _check_flow(flow, "gradient_heatmap")
    fig, ax = _axes(ax)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.ma.masked_invalid(np.log10(mean))
    R, T = mean.shape
    im = ax.imshow(z, aspect="auto", interpolation="nearest", cmap="viridis", extent=(0.5, T + 0.5, R - 0.5, -0.5))
    ax.set_yticks(range(R), [str(n) for n in flow.layer_names])
    ax.set_xlabel(r"step $t$")
    ax.set_ylabel("layer")
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label(r"$\log_{10}\|\partial L/\partial s_t\|$ (batch mean)")
    return _finish(fig, ax, title, "Gradient through time and depth", path)


# --- singular values by lag ------------------------------------------------------------------------


def _log_sv(value, what):
    a = _real_array(value, what, (2, 3))
    return a.mean(axis=0) if a.ndim == 3 else a  # (T, k): mean of logs over the batch


def singular_values_by_lag(values, *, labels=None, k: Optional[int] = None, ax=None, path=None, title=None):
    r"""The singular values :math:`\sigma_i(\partial s_T/\partial s_{T-\ell})` against the lag
    :math:`\ell = 1 \ldots T`, on a log axis.

    Args:
        values: what :func:`rnncore.analysis.singular_values_by_lag` returns — :math:`\log\sigma_i`
            in nats, ``(B, T, k)`` with ``[:, lag-1, i]`` (or ``(T, k)``) — or a dict
            ``{label: values}``, or a list of them with ``labels``.
        labels: a label (string) for one result, or one label per result in a list.
        k: draw only the k largest singular values of each result (default: all).

    The batch is summarised by the geometric mean, :math:`\exp` of the mean of :math:`\log\sigma`
    over batch rows; each line's y data is that, float64 (values below float64's range, and
    unresolved ``-inf`` ones, are left out). The largest singular value is drawn bold and
    labelled; the others thin, in the same colour. A straight falling line is geometric decay at
    the rate of :math:`\lambda_i` (:func:`lyapunov_spectrum`).

    Example:
        >>> import numpy as np
        >>> import rnncore as rc
        >>> lags = np.arange(1, 21)[:, None]
        >>> v = np.stack([-0.1 * lags[:, 0], -0.5 * lags[:, 0]], axis=-1)[None]   # (1, 20, 2), nats
        >>> fig = rc.plot.singular_values_by_lag(v, labels="GRU")
        >>> len(fig.axes[0].lines)
        2
    """
    if k is not None and not (checks.is_integer(k) and k >= 1):
        raise ValueError(f"singular_values_by_lag: k={k!r}; expected a positive integer or None.")
    names, items = _named(values, labels, "singular_values_by_lag")
    logs = [
        _log_sv(v, f"singular_values_by_lag[{n!r}]" if n else "singular_values_by_lag") for n, v in zip(names, items)
    ]
    fig, ax = _axes(ax)
    colors = _colors(names) if names != [None] else ["#333333"]
    for name, log, color in zip(names, logs, colors):
        T, kk = log.shape
        x = np.arange(1, T + 1)
        for i in range(min(kk, k or kk)):
            with np.errstate(over="ignore", under="ignore"):
                y = np.exp(log[:, i])
            y = np.where((y > 0) & np.isfinite(y), y, np.nan)
            if i == 0:
                label = name if name is not None else r"$\sigma_1$"
                ax.plot(x, y, color=color, linewidth=2.0, label=label)
            else:
                label = r"$\sigma_2 \ldots \sigma_k$" if (i == 1 and name is None) else "_nolegend_"
                ax.plot(x, y, color=color, linewidth=0.8, alpha=0.45, label=label)
    ax.set_yscale("log")
    _integer_x(ax)
    ax.set_xlabel(r"lag $\ell = T - k$ (steps)")
    ax.set_ylabel(r"$\sigma_i(\partial s_T/\partial s_{T-\ell})$ (batch geometric mean)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(fig, ax, title, "Singular values of the Jacobian product by lag", path)


# --- Lyapunov spectrum ------------------------------------------------------------------------------


def lyapunov_spectrum(exponents, *, labels=None, ax=None, path=None, title=None):
    r"""Lyapunov exponents :math:`\lambda_i` (nats per step) against their index
    :math:`i = 1 \ldots k`, with a zero line: below it perturbations and long-range gradients
    shrink (:math:`e^{\lambda_i}` per step), above it they grow.

    Args:
        exponents: what :func:`rnncore.analysis.lyapunov_spectrum` returns, ``(B, k)``, or one
            spectrum ``(k,)``; or a dict ``{label: exponents}``, or a list of them with ``labels``.
        labels: a label (string) for one result, or one label per result in a list.

    For ``(B, k)`` the line is the batch mean (its y data ``exponents.mean(axis=0)``) and a band
    spans the batch's minimum to maximum at each index (for B > 1). The zero line has
    ``gid="reference"``.

    Example:
        >>> import numpy as np
        >>> import rnncore as rc
        >>> lam = np.array([[-0.1, -0.5, -1.0], [-0.2, -0.4, -1.2]])            # (B, k)
        >>> ax = rc.plot.lyapunov_spectrum(lam, labels="LSTM").axes[0]
        >>> [line.get_gid() for line in ax.lines], ax.lines[0].get_ydata().tolist()
        ([None, 'reference'], [-0.15000000000000002, -0.45, -1.1])
    """
    names, items = _named(exponents, labels, "lyapunov_spectrum")
    arrays = [
        _real_array(e, f"lyapunov_spectrum[{n!r}]" if n else "lyapunov_spectrum", (1, 2)) for n, e in zip(names, items)
    ]
    fig, ax = _axes(ax)
    colors = _colors(names) if names != [None] else ["#333333"]
    for name, a, color in zip(names, arrays, colors):
        a = a[None] if a.ndim == 1 else a
        i = np.arange(1, a.shape[1] + 1)
        label = name if name is not None else ("batch mean" if a.shape[0] > 1 else r"$\lambda_i$")
        ax.plot(i, a.mean(axis=0), color=color, marker="o", markersize=3.5, linewidth=1.6, label=label)
        if a.shape[0] > 1:
            ax.fill_between(
                i,
                a.min(axis=0),
                a.max(axis=0),
                color=color,
                alpha=0.2,
                linewidth=0,
                label="batch range" if name is None else "_nolegend_",
            )
    ax.axhline(0.0, color="0.4", linewidth=0.9, linestyle="--", gid=_REFERENCE, label="_nolegend_")
    _integer_x(ax)
    ax.set_xlabel(r"index $i$")
    ax.set_ylabel(r"$\lambda_i$ (nats/step)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(fig, ax, title, "Lyapunov spectrum", path)


# --- gate saturation --------------------------------------------------------------------------------


def _sigmoid_gates() -> set:
    """The gates that saturate near 0 and 1: those whose activation is sigmoid-like in a default
    cell of each type of :data:`rnncore.cells.CELL_TYPES` (LSTM ``i, f, o``; GRU ``z, r``)."""
    return {
        gate
        for cell_class in cells.CELL_TYPES.values()
        for gate, act in cell_class(1).gate_activations().items()
        if analysis.saturation_kind(act) == "sigmoid"
    }


def _check_saturation(result, what: str) -> dict:
    if not isinstance(result, Mapping) or not result:
        raise ValueError(
            f"{what}: expected a non-empty dict {{gate: fraction}} (what rc.analysis.gate_saturation "
            f"returns); got {type(result).__name__}."
        )
    out = {}
    for gate, f in result.items():
        if not (checks.is_real(f) and 0.0 <= float(f) <= 1.0):
            raise ValueError(f"{what}: gate {gate!r} has fraction {f!r}; expected a number in [0, 1].")
        out[str(gate)] = float(f)
    return out


def gate_saturation(result, *, ax=None, path=None, title=None):
    r"""Per gate, the fraction of its values that sat saturated along the trajectory — sigmoid gates
    near 0 or 1, tanh outputs near ±1 — as bars (a percentage on each).

    Args:
        result: what :func:`rnncore.analysis.gate_saturation` returns, ``{gate: fraction}``; or a
            dict ``{label: {gate: fraction}}`` to compare cells (bars grouped per label, in its
            cell type's colour).

    Each bar's height is the fraction. The tick label under each bar names the gate and the
    saturation it counts: ``0|1`` for the sigmoid gates (LSTM ``i, f, o``; GRU ``z, r``), ``±1``
    for the tanh ones (LSTM ``g`` and ``tanh(c)``, GRU ``hh``, SimpleRNN ``h``). A saturated unit
    passes almost no gradient; an LSTM forget gate open near 1 is the intended exception.

    Example:
        >>> import rnncore as rc
        >>> fig = rc.plot.gate_saturation({"z": 0.1, "r": 0.0, "hh": 0.25})
        >>> [round(float(p.get_height()), 2) for p in fig.axes[0].patches]
        [0.1, 0.0, 0.25]
    """
    if isinstance(result, Mapping) and result and all(isinstance(v, Mapping) for v in result.values()):
        groups = {str(k): _check_saturation(v, f"gate_saturation[{k!r}]") for k, v in result.items()}
        colors = _colors(list(groups))
    else:
        groups = {None: _check_saturation(result, "gate_saturation")}
        colors = ["#555555"]
    fig, ax = _axes(ax)
    sigmoid_gates = _sigmoid_gates()
    x0, ticks, ticklabels = 0.0, [], []
    for (label, fractions), color in zip(groups.items(), colors):
        xs = x0 + np.arange(len(fractions))
        heights = list(fractions.values())
        bars = ax.bar(
            xs, heights, width=0.8, color=color, edgecolor="white", label=label if label is not None else "_nolegend_"
        )
        ax.bar_label(
            bars,
            labels=[f"{100 * h:.0f}%" if h >= 0.1 or h == 0 else f"{100 * h:.1f}%" for h in heights],
            fontsize="x-small",
            padding=1.5,
        )
        ticks.extend(xs.tolist())
        ticklabels.extend(f"{g}\n{'0|1' if g in sigmoid_gates else '±1'}" for g in fractions)
        x0 += len(fractions) + 0.8
    from matplotlib.ticker import PercentFormatter

    ax.set_xticks(ticks, ticklabels, fontsize="small")
    top = max(max(g.values()) for g in groups.values())
    ax.set_ylim(0.0, min(1.1, max(0.05, 1.2 * top)))  # small fractions stay visible
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("gate (saturated near)")
    ax.set_ylabel("saturated values (% of steps × units)")
    ax.grid(True, axis="y", alpha=0.3)
    if None not in groups:
        ax.legend(fontsize="small")
    return _finish(fig, ax, title, "Gate saturation", path)


# --- training curves ---------------------------------------------------------------------------------


def _history(h, label):
    if isinstance(h, History):
        return h.history, list(h.epoch), h.diverged is not None
    if isinstance(h, Mapping):
        return h, [], False
    raise ValueError(
        f"training_curves[{label!r}]: expected an rc.train.History or a dict of per-epoch lists; "
        f"got {type(h).__name__}."
    )


def training_curves(histories, *, key: str = "loss", ax=None, path=None, title=None, log: bool = True):
    r"""``key`` (default the loss) against epoch for each run, and ``val_<key>`` dashed where the run
    has it.

    Args:
        histories: a dict ``{label: History}``, each an :class:`rnncore.history.History` (what
            :func:`rnncore.fit` returns) or a plain dict of per-epoch lists (e.g. Keras's
            ``history.history``).
        key: the logged quantity (``"loss"``, ``"mae"``, ``"accuracy"``, …).
        log: a log y axis (used only where every drawn value is positive).

    Epochs count from 1 (``History.epoch + 1``). A run that diverged (``History.diverged`` set, or
    a non-finite last value) is marked ✕ at its last finite value, and "(diverged)" follows its
    label; the ✕ is a line with ``gid="diverged"``.

    Example:
        >>> import rnncore as rc
        >>> fig = rc.plot.training_curves({"LSTM": {"loss": [1.0, 0.5, 0.2], "val_loss": [1.1, 0.7, 0.4]}})
        >>> [line.get_linestyle() for line in fig.axes[0].lines]
        ['-', '--']
    """
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError(
            f"training_curves: expected a non-empty dict {{label: History}}; got "
            f"{type(histories).__name__}. Wrap a single run as {{'run': history}}."
        )
    if not isinstance(key, str):
        raise ValueError(f"training_curves: key={key!r}; expected a logged name such as 'loss'.")
    runs = []
    for label, h in histories.items():
        logs, epochs, diverged = _history(h, label)
        if key not in logs:
            raise ValueError(f"training_curves[{label!r}]: no {key!r} in its history; it has {sorted(logs)}.")
        y = _real_array(logs[key], f"training_curves[{label!r}][{key!r}]", (1,))
        val = logs.get(f"val_{key}")
        yv = None if val is None else _real_array(val, f"training_curves[{label!r}]['val_{key}']", (1,))
        x = np.asarray(epochs, np.float64) + 1 if len(epochs) == len(y) else np.arange(1, len(y) + 1.0)
        diverged = diverged or not np.isfinite(y[-1])
        runs.append((str(label), x, y, yv, diverged))
    fig, ax = _axes(ax)
    colors = _colors([r[0] for r in runs])
    drawn = []
    for (label, x, y, yv, diverged), color in zip(runs, colors):
        ax.plot(x, y, color=color, linewidth=1.8, label=label + (" (diverged)" if diverged else ""))
        drawn.append(y)
        if yv is not None:
            xv = x if len(yv) == len(x) else np.arange(1, len(yv) + 1.0)
            ax.plot(xv, yv, color=color, linewidth=1.4, linestyle="--", label=f"{label} val")
            drawn.append(yv)
        if diverged:
            finite = np.flatnonzero(np.isfinite(y))
            if finite.size:
                j = finite[-1]
                ax.plot(
                    [x[j]],
                    [y[j]],
                    linestyle="none",
                    marker="x",
                    markersize=11,
                    markeredgewidth=2.5,
                    color=color,
                    gid=_DIVERGED,
                    label="_nolegend_",
                )
    values = np.concatenate(drawn)
    values = values[np.isfinite(values)]
    if log and values.size and np.all(values > 0):
        ax.set_yscale("log")
    _integer_x(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(fig, ax, title, f"Training: {key}", path)


# --- the diagnose figure -------------------------------------------------------------------------------

_PANELS = ("flow", "lyapunov", "singular_values", "saturation")


def diagnose(results, *, path=None, title=None):
    r"""The four-panel picture of the ``rnncore diagnose`` command: for each cell, how much
    gradient survives each lag, the Lyapunov spectrum, the top singular value of
    :math:`\partial s_T/\partial s_{T-\ell}` by lag, and gate saturation.

    Args:
        results: ``{cell_name: dict(flow=GradientFlow, lyapunov=exponents,
            saturation=gate_saturation result, singular_values=singular_values_by_lag result)}``;
            any entry may be left out (its panel then says so).

    Panels (a 2×2 grid, ``fig.axes[:4]`` in reading order): :func:`gradient_flow` against lag,
    :func:`lyapunov_spectrum`, :func:`singular_values_by_lag` with ``k=1``,
    :func:`gate_saturation`; the same colour per cell throughout.

    Example:
        >>> import numpy as np
        >>> import rnncore as rc
        >>> fig = rc.plot.diagnose({"GRU": dict(lyapunov=np.array([-0.2, -0.9]),
        ...                                     saturation={"z": 0.1, "r": 0.0, "hh": 0.3})})
        >>> [ax.get_title() for ax in fig.axes[:4]]
        ['Gradient reaching each lag', 'Lyapunov spectrum', 'Top singular value by lag', 'Gate saturation']
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError(
            f"diagnose: expected a non-empty dict {{cell_name: dict(flow=..., lyapunov=..., "
            f"saturation=..., singular_values=...)}}; got {type(results).__name__}."
        )
    for name, entry in results.items():
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"diagnose[{name!r}]: expected a dict with keys among {list(_PANELS)}; got {type(entry).__name__}."
            )
        unknown = sorted(set(map(str, entry)) - set(_PANELS))
        if unknown:
            raise ValueError(f"diagnose[{name!r}]: unknown key(s) {unknown}; expected keys among {list(_PANELS)}.")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.0, 8.5), layout="constrained")
    FigureCanvasAgg(fig)
    _show_in_notebooks()
    axes = fig.subplots(2, 2).ravel()
    panels = (
        ("flow", "Gradient reaching each lag", lambda d, ax, t: gradient_flow(d, lags=True, ax=ax, title=t)),
        ("lyapunov", "Lyapunov spectrum", lambda d, ax, t: lyapunov_spectrum(d, ax=ax, title=t)),
        (
            "singular_values",
            "Top singular value by lag",
            lambda d, ax, t: singular_values_by_lag(d, k=1, ax=ax, title=t),
        ),
        ("saturation", "Gate saturation", lambda d, ax, t: gate_saturation(d, ax=ax, title=t)),
    )
    for ax, (entry, panel_title, draw) in zip(axes, panels):
        data = {str(name): r[entry] for name, r in results.items() if r.get(entry) is not None}
        if data:
            draw(data, ax, panel_title)
        else:
            ax.set_title(panel_title)
            ax.text(
                0.5, 0.5, f"no {entry!r} in the results", ha="center", va="center", transform=ax.transAxes, color="0.4"
            )
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Why would these networks train, or not?" if title is None else title)
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path={path!r}; expected a file name such as 'diagnose.png' or 'diagnose.pdf'.")
        fig.savefig(path, dpi=150)
    return fig
