"""The cell contract (rnncore/cells/contract.py): every shipped cell satisfies it, the base declares
the optional members' defaults, and the gates a cell names are what analysis and plot read."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import pytest

from rnncore import analysis, cells, plot
from rnncore.cells import _base, contract

CELL_CLASSES = list(cells.CELL_TYPES.values())


def test_cell_types_name_the_shipped_cells_in_order():
    assert list(cells.CELL_TYPES) == ["SimpleRNN", "LSTM", "GRU", "LayerNormLSTM"]
    assert all(cells.CELL_TYPES[name].__name__ == name for name in cells.CELL_TYPES)
    assert list(plot.CELL_COLORS) == list(cells.CELL_TYPES)


@pytest.mark.parametrize("cell_class", CELL_CLASSES, ids=lambda c: c.__name__)
def test_every_shipped_cell_satisfies_the_protocols(cell_class):
    cell = cell_class(3)
    assert isinstance(cell, contract.RecurrentCell)
    assert isinstance(cell, contract.SplitCell)
    assert isinstance(cell, contract.GatedCell)
    assert isinstance(cell, contract.CoreVJPCell) == cell.has_core_vjp  # LayerNormLSTM: traced core VJP
    assert cell.jacobian is not None


@pytest.mark.parametrize("cell_class", CELL_CLASSES, ids=lambda c: c.__name__)
def test_named_gates_are_the_gates_the_cell_lists_with_their_activations(cell_class):
    cell = cell_class(3)
    p = cell.init(jax.random.PRNGKey(0), 2)
    gv = cell.gate_values(p, cell.initial_state(4), jnp.ones((4, 2)))
    named = cell.named_gates(gv)
    assert list(named) == list(cell.gate_activations())
    assert all(v.shape == (4, 3) for v in named.values())
    for name, act in cell.gate_activations().items():
        kind = analysis.saturation_kind(act)
        v = named[name]
        if kind == "sigmoid":
            assert bool(jnp.all((v >= 0) & (v <= 1))), name
        if kind == "tanh":
            assert bool(jnp.all(jnp.abs(v) <= 1)), name


def test_the_cell_state_gate_is_named_after_the_activation():
    assert "relu(c)" in cells.LSTM(2, activation="relu").gate_activations()
    assert "tanh(c)" in cells.LayerNormLSTM(2).gate_activations()


@dataclasses.dataclass(frozen=True)
class StepOnly(cells.Cell):
    """A cell that defines ``step`` only: every optional member comes from the base."""

    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    state_type = cells.SimpleRNNState

    def init(self, key, input_dim, dtype=jnp.float32):
        return cells.SimpleRNNParams(jnp.ones((input_dim, self.units), dtype), jnp.eye(self.units, dtype=dtype))

    def step(self, params, state, x, dropout_masks=None):
        h = jnp.tanh(x @ params.kernel + state.h @ params.recurrent_kernel)
        return cells.SimpleRNNState(h), h


def test_the_base_declares_every_optional_default():
    cell = StepOnly(2)
    assert isinstance(cell, contract.RecurrentCell)
    assert not isinstance(cell, contract.SplitCell)  # no core: bptt differentiates the whole step
    for name, default in contract.OPTIONAL_DEFAULTS.items():
        assert getattr(cell, name) == default, name
        assert contract.optional_member(cell, name) == default
    assert cell.gate_activations() == {} and cell.named_gates(None) == {}
    assert [f.name for f in dataclasses.fields(cells.SimpleRNN)][:2] == ["units", "activation"]
    assert [f.name for f in dataclasses.fields(cells.SimpleRNN)][-1] == "compute_dtype"


def test_a_cell_without_gates_has_no_saturation_and_says_why():
    cell = StepOnly(2)
    p = cell.init(jax.random.PRNGKey(0), 1)
    with pytest.raises(ValueError, match="gate_saturation needs a cell that names its gates"):
        analysis.gate_saturation(cell, p, jnp.ones((1, 3, 1)))


def test_optional_member_of_a_duck_typed_cell_and_a_bad_name():
    assert contract.optional_member(object(), "jacobian") is None
    assert contract.optional_member(object(), "gates") == 1
    with pytest.raises(ValueError, match=r"name='step'; expected one of 'jacobian'"):
        contract.optional_member(object(), "step")


def test_the_old_private_check_names_keep_working():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _base.positive_int("units", 3) == 3
    with pytest.raises(ValueError, match=r"units=0; expected a positive integer"):
        _base.positive_int("units", 0)
    assert cells.matmul is _base.matmul
