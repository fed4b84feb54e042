"""rc.analysis.gradient_flow on a model converted from PyTorch: it runs, and the gradient it says
reaches the first step's state is the one PyTorch's autograd computes (the module run in two
pieces, the state between them kept with retain_grad)."""

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch_oracles import Head, head_arch, randomize  # noqa: E402

import rnncore as rc  # noqa: E402

B, T, F, U = 3, 7, 4, 5


def _loss(y_pred, y):
    return jnp.sum(jnp.sin(y_pred))


@pytest.mark.parametrize("mode", ["GRU", "LSTM"])
def test_gradient_reaching_the_first_state_equals_torch(x64, mode):
    rnn = getattr(nn, mode)(F, U, batch_first=True, dtype=torch.float64)
    module = randomize(Head(rnn, nn.Linear(U, 2, dtype=torch.float64), "last"), 11)
    x = np.random.default_rng(0).normal(size=(B, T, F))
    model, params = rc.from_torch(module, arch=head_arch(module))
    flow = rc.analysis.gradient_flow(model, params, jnp.asarray(x), None, _loss)
    assert flow.state_norms.shape == (1, B, T) and flow.layer_names == (f"0:{mode}",)

    xt = torch.from_numpy(x)
    out1, s1 = rnn(xt[:, :1])  # s_1: the state after the first step
    parts = s1 if mode == "LSTM" else (s1,)
    for p in parts:
        p.retain_grad()
    out2, _ = rnn(xt[:, 1:], s1)
    torch.sin(module.fc(out2[:, -1])).sum().backward()
    grad_s1 = torch.cat([p.grad[0] for p in parts], dim=-1).numpy()  # (B, S): [dh, dc] for an LSTM
    np.testing.assert_allclose(flow.state_norms[0, :, 0], np.linalg.norm(grad_s1, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(
        flow.hidden_norms[0, :, 0], np.linalg.norm(parts[0].grad[0].numpy(), axis=-1), rtol=1e-12
    )


def test_gradient_flow_runs_on_a_stacked_bidirectional_token_model():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, F, padding_idx=0)
            self.lstm = nn.LSTM(F, U, num_layers=2, bidirectional=True, batch_first=True)
            self.fc = nn.Linear(2 * U, 3)

        def forward(self, tokens):
            out, _ = self.lstm(self.emb(tokens))
            return self.fc(out[:, -1])

    model, params = rc.from_torch(randomize(Tagger(), 2))
    ids = np.random.default_rng(1).integers(0, 20, size=(B, T))
    flow = rc.analysis.gradient_flow(model, params, ids, None, _loss)
    assert flow.state_norms.shape == (4, B, T) and np.isfinite(flow.state_norms).all()
    assert flow.layer_indices == (1, 1, 2, 2)
