"""Subclassed modules read from their forward's source (never run): each recognised pattern gives
the description it says, and its numbers equal PyTorch's; anything else is refused with advice."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch_oracles import errors, randomize  # noqa: E402

import rnncore as rc  # noqa: E402
from rnncore.interop.torch.live import describe  # noqa: E402

F, U = 3, 4


class LastStepNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(F, U, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * U, 1)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return self.fc(out[:, -1, :])


class EveryStepNet(nn.Module):
    """A docstring is allowed."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(F, U, nonlinearity="relu")
        self.drop = nn.Dropout(0.1)
        self.head = nn.Sequential(nn.Linear(U, U), nn.Dropout(0.2), nn.Linear(U, 2))

    def forward(self, x):
        out = self.rnn(x)[0]
        out = self.drop(out)
        return self.head(out)


class FinalStateNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(F, U, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * U, 2)

    def forward(self, x):
        _, h_n = self.gru(x)
        return self.fc(torch.cat((h_n[-2], h_n[-1]), dim=1))


class FinalLSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(F, U)
        self.fc = nn.Linear(U, 1)

    def forward(self, seq):
        output, state = self.lstm(seq)
        return self.fc(state[0][-1])


class TimeMajorLastNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(F, U, num_layers=2)
        self.fc = nn.Linear(U, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(out[-1])


class ActivationNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(F, U, batch_first=True)
        self.fc = nn.Linear(U, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return torch.relu(self.fc(out[:, -1]))


class FunctionalNet(nn.Module):
    """Activations as modules (one called twice) and as functions of torch.nn.functional."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(F, U, batch_first=True)
        self.fc = nn.Linear(U, U)
        self.act = nn.ELU()
        self.out = nn.Linear(U, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        z = self.act(out)
        z = nn.functional.gelu(self.fc(z))
        z = nn.functional.leaky_relu(z, 0.2)
        z = self.act(z)
        return torch.nn.functional.log_softmax(self.out(z), dim=-1)


CASES = [
    (LastStepNet, True, [("LSTM", "lstm", "last"), ("Linear", "fc", None)]),
    (
        EveryStepNet,
        False,
        [
            ("RNN", "rnn", "sequence"),
            ("Dropout", "drop", None),
            ("Linear", "head.0", None),
            ("Dropout", "head.1", None),
            ("Linear", "head.2", None),
        ],
    ),
    (FinalStateNet, True, [("GRU", "gru", "final"), ("Linear", "fc", None)]),
    (FinalLSTMNet, False, [("LSTM", "lstm", "final"), ("Linear", "fc", None)]),
    (TimeMajorLastNet, False, [("GRU", "gru", "last"), ("Linear", "fc", None)]),
    (ActivationNet, True, [("GRU", "gru", "last"), ("Linear", "fc", None), ("ReLU", "torch.relu@3:11", None)]),
    (
        FunctionalNet,
        True,
        [
            ("LSTM", "lstm", "sequence"),
            ("ELU", "act", None),
            ("Linear", "fc", None),
            ("GELU", "nn.functional.gelu@4:8", None),
            ("LeakyReLU", "nn.functional.leaky_relu@5:8", None),
            ("ELU", "act@6:8", None),
            ("Linear", "out", None),
            ("LogSoftmax", "torch.nn.functional.log_softmax@7:11", None),
        ],
    ),
]


@pytest.mark.parametrize("cls,batch_first,expected", CASES, ids=[c[0].__name__ for c in CASES])
def test_recognised_patterns(cls, batch_first, expected):
    module = randomize(cls(), 7)
    specs, _ = describe(module)
    assert [(s["type"], s["name"], s.get("output")) for s in specs] == expected
    shape = (2, 5, F) if batch_first else (5, 2, F)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    errs = errors(module, x, time_major=not batch_first)
    assert errs["outputs"] < 1e-6 and max(errs.values()) < 1e-5, errs


def test_the_forward_is_not_run():
    class Trap(LastStepNet):
        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

        def __call__(self, *a, **k):
            raise AssertionError("the module was run")

    rc.from_torch(Trap())


class SkipNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(F, F, batch_first=True)
        self.fc = nn.Linear(F, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(out + x)


class WrongSliceNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(F, U)  # time-major: out[:, -1] is the last batch row, not the last step
        self.fc = nn.Linear(U, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(out[:, -1])


class BidirectionalBackwardOnlyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(F, U, bidirectional=True)
        self.fc = nn.Linear(U, 1)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc(h[-1])


class MethodActivationNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(F, U)

    def forward(self, x):
        out = self.fc(x)
        return out.relu()


class NotTorchFunctionalNet(MethodActivationNet):
    def forward(self, x):
        out = self.fc(x)
        return F.relu(out)  # F is this file's feature count, not torch.nn.functional


class NonLiteralArgumentNet(MethodActivationNet):
    def forward(self, x):
        out = self.fc(x)
        return nn.functional.softmax(out, dim=U - 5)


class UnequalFunctionalNet(MethodActivationNet):
    def forward(self, x):
        out = self.fc(x)
        return nn.functional.softplus(out, beta=2.0)


class SharedLinearNet(MethodActivationNet):
    def forward(self, x):
        out = self.fc(x)
        return self.fc(nn.functional.relu(out))


class UnusedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(F, U)
        self.spare = nn.Linear(U, 1)

    def forward(self, x):
        return self.gru(x)[0]


@pytest.mark.parametrize(
    "cls,message",
    [
        (SkipNet, "'out \\+ x': not a recognised operation"),
        (MethodActivationNet, "'out.relu\\(\\)': not a recognised operation"),
        (NotTorchFunctionalNet, "'F.relu\\(out\\)': not a recognised operation"),
        (NonLiteralArgumentNet, "an activation function's arguments must be literals"),
        (SharedLinearNet, "self.fc is called twice \\(shared weights\\)"),
        (WrongSliceNet, "'out\\[:, -1\\]': not one of the recognised selections"),
        (BidirectionalBackwardOnlyNet, "'h\\[-1\\]': not one of the recognised selections"),
        (UnusedNet, "self.spare holds weights but forward does not use it"),
    ],
)
def test_unrecognised_forwards_are_refused_with_advice(cls, message):
    with pytest.raises(ValueError, match=f"{cls.__name__}.*{message}.*pass arch="):
        rc.from_torch(cls())


def test_an_activation_function_is_checked_as_its_module_is():
    with pytest.raises(ValueError, match=r"module 'nn.functional.softplus@3:11' \(Softplus\).*beta=2.0; expected 1.0"):
        rc.from_torch(UnequalFunctionalNet())


def test_an_explicit_description_is_checked_against_the_children():
    module = SkipNet()
    arch = [{"type": "GRU", "name": "gru", "batch_first": True, "output": "last"}, {"type": "Linear", "name": "fc"}]
    model, _ = rc.from_torch(module, arch=arch)  # the user vouches for what forward computes
    assert [type(layer).__name__ for layer in model.layers] == ["GRU", "Dense"]
    with pytest.raises(ValueError, match=r"arch\[0\] \(GRU\): batch_first=False, but the module has batch_first=True"):
        rc.from_torch(module, arch=[dict(arch[0], batch_first=False), arch[1]])
    with pytest.raises(ValueError, match=r"arch\[0\]: type='LSTM', but 'gru' is an nn.GRU"):
        rc.from_torch(module, arch=[dict(arch[0], type="LSTM"), arch[1]])
    with pytest.raises(ValueError, match=r"arch\[1\]: the module has no child named 'head'"):
        rc.from_torch(module, arch=[arch[0], dict(arch[1], name="head")])


def test_a_description_may_name_an_activation_forward_applies_as_a_function():
    module = randomize(ActivationNet(), 3)
    arch = [
        {"type": "GRU", "name": "gru", "batch_first": True, "output": "last"},
        {"type": "Linear", "name": "fc"},
        {"type": "ReLU", "name": "relu"},  # no child: torch.relu in forward
    ]
    model, _ = rc.from_torch(module, arch=arch)
    assert [type(layer).__name__ for layer in model.layers] == ["GRU", "Dense", "Activation"]
    x = np.random.default_rng(0).normal(size=(2, 5, F)).astype("float32")
    errs = errors(module, x, arch=arch)
    assert errs["outputs"] < 1e-6 and max(errs.values()) < 1e-5, errs


def test_an_nn_sequential_of_feed_forward_modules():
    module = randomize(nn.Sequential(nn.Linear(F, U), nn.Dropout(0.3), nn.LayerNorm(U), nn.Linear(U, 2)), 9)
    model, _ = rc.from_torch(module)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dropout", "LayerNormalization", "Dense"]
    x = np.random.default_rng(0).normal(size=(2, 5, F)).astype("float32")
    errs = errors(module, x)
    assert errs["outputs"] < 1e-6 and max(errs.values()) < 1e-5, errs
