"""diet_np's hand-written BPTT against PyTorch autograd on the same DIET-SNN.

benchmarks/torch_reference.py builds the network in PyTorch (spike via a custom
autograd Function with Eq. 8's surrogate w.r.t. u and v, detached reset); on a tiny
float64 network its loss, gradients and one Adam step must equal diet_np's.
Skipped where PyTorch is not installed (it is a benchmark-only dependency).
"""
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import torch_reference  # noqa: E402


@pytest.mark.parametrize("layout", torch_reference.LAYOUTS)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_and_adam_step_equal_pytorch_autograd(layout, seed):
    errors = torch_reference.parity_check(T=4, seed=seed, layout=layout)
    bad = {k: e for k, e in errors.items() if not e < 1e-10}
    assert not bad, bad
