r"""Diagnostics: look inside a cell and check the lecture's claims with your own eyes.

Pure, jittable functions of ``(cell, params, xs, ...)`` returning named pytrees of arrays
(no plotting: the notebooks in ``notebooks/`` draw them). Each runs the cell's own
``trace`` (the one place its equations live) and, where it needs derivatives,
differentiates it with ``jax.jacobian`` or ``jax.vjp``:

- :func:`gate_trace`: every gate activation (by the cell's own gate letters: ``i, f, g, o``;
  ``r, z, n``; ...), the carry (the LSTM's memory cell ``c``) and the output at every step.
- :func:`carry_jacobian`: the memory Jacobian :math:`\partial c_t/\partial c_{t-1}` with
  :math:`h_{t-1}` held fixed (:math:`\mathrm{diag}(f_t)`; the identity without a forget
  gate) and the full one-step Jacobian of the carry.
- :func:`gradient_flow`: gradient norms through time for a loss on the last output, per
  step: vanishing in the simple RNN, kept by the gated cells' shortcuts, and set by
  ``forget_bias`` and ``update_bias``.
- :func:`regimes`: per unit, how often each gate is open (> 0.9) or closed (< 0.1), and the
  lecture's extreme regimes (:data:`REGIMES`).
- :func:`param_counts`: parameters per cell and the ratio to a simple RNN of the same sizes.

Functions that take ``cell`` are jitted with the cell closed over or static, e.g.
``jax.jit(gate_trace, static_argnums=0)``.

``import gatedcells`` does not import this module (import it as
``from gatedcells import diagnostics``); like the core, it needs only jax.

Shape legend: ``B`` batch (``*B`` any number of axes), ``T`` time, ``I`` input, ``H``
hidden, ``O`` output, ``M`` memory, ``N`` whole carry.
"""

from ._flow import GradientFlow as GradientFlow
from ._flow import gradient_flow as gradient_flow
from ._jacobian import CarryJacobian as CarryJacobian
from ._jacobian import carry_jacobian as carry_jacobian
from ._params import ParamCount as ParamCount
from ._params import count_params as count_params
from ._params import param_counts as param_counts
from ._regimes import REGIMES as REGIMES
from ._regimes import Regimes as Regimes
from ._regimes import regimes as regimes
from ._trace import GateTrace as GateTrace
from ._trace import gate_trace as gate_trace

__all__ = [
    "count_params",
    "REGIMES",
    "CarryJacobian",
    "GateTrace",
    "GradientFlow",
    "ParamCount",
    "Regimes",
    "carry_jacobian",
    "gate_trace",
    "gradient_flow",
    "param_counts",
    "regimes",
]
