"""The fast engine: the same computations as the reference, made fast.

Each module opens with the reference function it equals and the measurement
that justifies it.  :mod:`diet_np.engine` chooses between the two paths;
nothing here reads the environment (:mod:`diet_np.settings` does).

* :mod:`~diet_np.fast.parallel`: the CPU pool that the others run their chunks on;
* :mod:`~diet_np.fast.lif`: the LIF layer in cache-sized neuron blocks, boolean
  spikes out (``compact``), potentials in the current's memory (``overwrite``);
* :mod:`~diet_np.fast.kernels`: the fused CUDA LIF kernels;
* :mod:`~diet_np.fast.conv` and :mod:`~diet_np.fast.winograd`: chunked im2col
  and Winograd F(2x2, 3x3) / F(4x4, 3x3) convolutions;
* :mod:`~diet_np.fast.pooling`, :mod:`~diet_np.fast.dropout`,
  :mod:`~diet_np.fast.linear`: the other layers' ops on the pool;
* :mod:`~diet_np.fast.adam`: the Adam update in cache-sized blocks;
* :mod:`~diet_np.fast.host_memory`: glibc keeps freed memory (process-wide,
  set by the command line only).
"""
from .conv import conv2d_backward, conv2d_forward
from .dropout import dropout_backward, dropout_forward
from .lif import lif_backward, lif_forward
from .linear import linear_backward, linear_forward
from .pooling import avgpool_backward, avgpool_forward

__all__ = ["conv2d_forward", "conv2d_backward", "dropout_forward", "dropout_backward",
           "lif_forward", "lif_backward", "linear_forward", "linear_backward",
           "avgpool_forward", "avgpool_backward"]
