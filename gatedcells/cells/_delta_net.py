"""The delta-rule factories: :func:`delta_net` and :func:`gated_delta_net`, one spec each,
assembled into a :class:`gatedcells.Cell` in one place (:func:`assemble`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .. import _checks
from .._cell import Cell
from . import _blocks, _delta, _delta_chunkwise
from ._anatomy import Bound
from ._delta_chunkwise import CHUNK_SIZE, FORMS

KERNEL_INIT = jax.nn.initializers.lecun_normal()
CONV_INIT = jax.nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")  # PyTorch's Conv1d


def delta_net(
    hidden_size: int,
    *,
    num_heads: int = 1,
    qk_dim: int | None = None,
    v_dim: int | None = None,
    negative_eigenvalues: bool = False,
    conv_size: int | None = 4,
    qk_norm: bool = True,
    output_gate: bool = False,
    output_proj: bool = True,
    resets: bool = False,
    form: str = "chunkwise",
    chunk_size: int = CHUNK_SIZE,
    scale: float | None = None,
    norm_eps: float = 1e-5,
    kernel_init: Callable = KERNEL_INIT,
    conv_init: Callable = CONV_INIT,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""DeltaNet (Yang et al. 2024): a matrix memory written by the delta rule.

    Per head, from the input alone (no :math:`h_{t-1}`; ``conv`` the short causal
    depthwise convolution, when ``conv_size`` is set):

    .. math::

       q_t, k_t, v_t &= \mathrm{SiLU}(\mathrm{conv}(x W_q, x W_k, x W_v))_t, \quad
       q_t \leftarrow s\,\frac{q_t}{\lVert q_t \rVert}, \quad
       k_t \leftarrow \frac{k_t}{\lVert k_t \rVert} \qquad
       b_t = \sigma(x_t W_b)\ \ (\text{or } 2\sigma(x_t W_b)) \\
       S_t &= S_{t-1} (I - b_t k_t k_t^\top) + b_t v_t k_t^\top
            = S_{t-1} + b_t (v_t - S_{t-1} k_t) k_t^\top \qquad o_t = S_t q_t \\
       y_t &= W_{out}^\top \bigl(\mathrm{RMSNorm}(o_t) \odot w_{norm}
              \ [\odot\ \mathrm{SiLU}(x_t W_g)]\bigr)

    The memory :math:`S \in \mathbb{R}^{d_v \times d_k}` stores :math:`v` at key :math:`k`:
    each step moves what it returns for :math:`k_t` towards :math:`v_t` by the fraction
    :math:`b_t` (a step of online regression, where linear attention only adds). With
    ``negative_eigenvalues`` (Grazzi et al. 2025) :math:`b \in (0, 2)`, so the transition
    :math:`I - b k k^\top` can reflect (eigenvalue down to -1), which lets the cell track
    parity; :math:`|1 - b| \le 1` keeps it stable. The scale :math:`s` defaults to
    :math:`1/\sqrt{d_k}`, as fla's kernels scale ``q`` (RMSNorm makes the output
    insensitive to it, but for :math:`\epsilon`).

    ``form="chunkwise"`` (default) runs the WY / UT-transform form in chunks of
    ``chunk_size`` steps (``gatedcells.cells._delta_chunkwise``): a triangular solve per
    chunk in parallel, then a scan over chunks; ``"recurrent"`` scans the step. Both give
    the same outputs, carry and gradients to float32 rounding, and both take ``lengths``
    (the state and the convolution's window stop at each sequence's end), ``reverse``, an
    initial carry and, with ``resets=True``, segment starts (the input's last channel,
    ``> 0.5`` where a new sequence starts: the memory and window restart from zero there, as
    :func:`gatedcells.resettable` does; backwards, as :func:`gatedcells.rg_lru`'s).

    Conventions (fla, ``fla-core``): the state of fla's ``naive_recurrent_gated_delta_rule``
    and ``delta_rule_recurrence`` is ours transposed, ``[B, NH, DK, DV]``
    (:class:`DeltaCarry`); their ``scale`` is our ``scale``; their ``beta`` is our ``b`` and
    their ``g`` our :math:`\log a` (:func:`gated_delta_net`); they take ``q, k, v`` after
    the convolution, SiLU and L2 normalisation, which fla's layers apply as here
    (``l2norm``: :math:`x / \sqrt{\lVert x \rVert^2 + 10^{-6}}`).

    Parameter count: ``I*(2Q + V + NH) + K*(2Q + V) + DV + V*H``, plus ``I*V`` with the
    output gate (``Q = qk_dim``, ``V = v_dim``, ``K = conv_size``; no ``K`` term without
    the convolution, no ``V*H`` without the output projection).

    Args:
      hidden_size: output size ``H``.
      num_heads: number of heads ``NH``; it must divide ``qk_dim`` and ``v_dim``.
      qk_dim: total key size ``Q`` over the heads (default ``H``).
      v_dim: total value size ``V`` over the heads (default ``H``).
      negative_eigenvalues: ``b = 2 sigmoid(.)`` in (0, 2) instead of (0, 1).
      conv_size: taps ``K >= 2`` of the short convolution, or ``None`` for none.
      qk_norm: L2-normalise ``q`` and ``k`` (the papers' choice; without it the update is
        stable only for :math:`b \lVert k \rVert^2 < 2`).
      output_gate: multiply the normalised read-out by ``SiLU(x W_g)``.
      output_proj: project the ``V`` read-outs to ``H`` (``w_out``); without, ``V = H``.
      resets: read a segment-start flag as the input's last channel.
      form: ``"chunkwise"`` or ``"recurrent"``.
      chunk_size: steps per chunk of the chunkwise form.
      scale: the query scale ``s`` (default ``1/sqrt(DK)``).
      norm_eps: the RMSNorm's :math:`\epsilon`.
      kernel_init: initializer of ``w_x`` and ``w_out``.
      conv_init: initializer of ``conv`` (default: PyTorch's ``Conv1d``,
        ``U(±1/sqrt(K))``).
      param_dtype: dtype of the params and of the default carry.
      dtype: compute dtype of the input and output projections (``None``: the params').

    Returns:
      A :class:`gatedcells.Cell` with :class:`DeltaParams`, carry :class:`DeltaCarry` and
      gates :class:`DeltaGates`.

    Raises:
      ValueError: a non-positive size, ``num_heads`` not dividing ``qk_dim`` or ``v_dim``,
        ``v_dim != hidden_size`` without ``output_proj``, ``conv_size < 2``, an unknown
        ``form``, a non-positive ``chunk_size``, ``scale`` or ``norm_eps``.
      TypeError: a flag of the wrong type.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.delta_net(8, num_heads=2)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.w_x.shape, params.conv.shape, gc.count_params(params)
      ((3, 26), (4, 24), 242)
      >>> carry = cell.initial_carry((5,))
      >>> carry.S.shape, carry.conv.shape        # 2 heads of [4, 4] memories, 3 past inputs
      ((5, 32), (5, 72))
      >>> xs = jax.random.normal(jax.random.key(1), (5, 100, 3))
      >>> _, ys = gc.unroll(cell, params, xs)
      >>> _, ys_rec = gc.unroll(gc.delta_net(8, num_heads=2, form="recurrent"), params, xs)
      >>> ys.shape, bool(jnp.allclose(ys, ys_rec, atol=1e-5))
      ((5, 100, 8), True)

    References:
      Schlag, Irie & Schmidhuber, "Linear Transformers Are Secretly Fast Weight
      Programmers", ICML 2021 (the delta rule in linear attention).
      Yang, Wang, Zhang, Shen & Kim, "Parallelizing Linear Transformers with the Delta Rule
      over Sequence Length", NeurIPS 2024 (DeltaNet, the chunkwise WY form).
      Grazzi, Siems, Zela, Franke, Hutter & Pontil, "Unlocking State-Tracking in Linear RNNs
      Through Negative Eigenvalues", ICLR 2025.
      ``fla-org/flash-linear-attention``, ``fla/ops/delta_rule/naive.py``.
    """
    return assemble(_spec("delta_net", hidden_size, locals(), gated=False))


def gated_delta_net(
    hidden_size: int,
    *,
    num_heads: int = 1,
    qk_dim: int | None = None,
    v_dim: int | None = None,
    negative_eigenvalues: bool = False,
    conv_size: int | None = 4,
    qk_norm: bool = True,
    output_gate: bool = True,
    output_proj: bool = True,
    resets: bool = False,
    form: str = "chunkwise",
    chunk_size: int = CHUNK_SIZE,
    scale: float | None = None,
    norm_eps: float = 1e-5,
    a_range: tuple[float, float] = (0.0, 16.0),
    dt_range: tuple[float, float] = (1e-3, 1e-1),
    kernel_init: Callable = KERNEL_INIT,
    conv_init: Callable = CONV_INIT,
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> Cell:
    r"""Gated DeltaNet (Yang, Kautz & Hatamizadeh 2025): the delta rule with a decay.

    :func:`delta_net`'s cell with a data-dependent decay :math:`a_t \in (0, 1]` per head,
    parametrised as in Mamba-2 and fla (``g`` is fla's gate, :math:`\log a_t`):

    .. math::

       g_t = -e^{A_{log}} \mathrm{softplus}(x_t W_a + dt_{bias}) \qquad a_t = e^{g_t} \\
       S_t = a_t S_{t-1} (I - b_t k_t k_t^\top) + b_t v_t k_t^\top \qquad o_t = S_t q_t

    At init :math:`A \sim U(a\_range)` (fla: ``U(0, 16)``) and the step sizes
    :math:`\mathrm{softplus}(dt_{bias})` are log-uniform in ``dt_range`` (floored at
    :math:`10^{-4}`). The output gate is on by default, as in the paper's layer. Every
    other flag, both forms and the conventions are :func:`delta_net`'s; parameter count
    :func:`delta_net`'s ``+ I*NH + 2*NH``.

    The arguments not listed below are :func:`delta_net`'s.

    Args:
      a_range: ``(low, high)``, ``0 <= low < high``: the range ``A`` is drawn from.
      dt_range: ``(low, high)``, ``0 < low < high``: the range of the initial step sizes.

    Returns:
      A :class:`gatedcells.Cell` with :class:`DeltaParams`, carry :class:`DeltaCarry` and
      gates :class:`DeltaGates`.

    Raises:
      ValueError: as :func:`delta_net`, and a bad ``a_range`` or ``dt_range``.
      TypeError: a flag of the wrong type.

    Examples:
      >>> import jax, jax.numpy as jnp, gatedcells as gc
      >>> cell = gc.gated_delta_net(8, num_heads=2, negative_eigenvalues=True)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> params.w_x.shape, params.A_log.shape, gc.count_params(params)
      ((3, 36), (2,), 276)
      >>> gates = cell.gates(params, cell.initial_carry((5,)), jnp.ones((5, 3)))
      >>> bool((gates.a > 0).all() & (gates.a <= 1).all() & (gates.b < 2).all())
      True

    References:
      Yang, Kautz & Hatamizadeh, "Gated Delta Networks: Improving Mamba2 with Delta Rule",
      ICLR 2025.
      ``fla-org/flash-linear-attention``, ``fla/ops/gated_delta_rule/naive.py``.
    """
    return assemble(_spec("gated_delta_net", hidden_size, locals(), gated=True))


def _spec(factory: str, hidden_size: int, flags: dict[str, Any], gated: bool) -> _delta.DeltaSpec:
    """Check a factory's ``flags`` (its ``locals()``) and resolve them into a spec."""
    H = _checks.check_positive_int("hidden_size", hidden_size)
    NH = _checks.check_positive_int("num_heads", flags["num_heads"])
    Q = H if flags["qk_dim"] is None else _checks.check_positive_int("qk_dim", flags["qk_dim"])
    V = H if flags["v_dim"] is None else _checks.check_positive_int("v_dim", flags["v_dim"])
    if Q % NH or V % NH:
        raise ValueError(f"num_heads={NH} must divide qk_dim={Q} and v_dim={V} (equal heads)")
    for name in ("negative_eigenvalues", "qk_norm", "output_gate", "output_proj", "resets"):
        _checks.check_flag(name, flags[name])
    if not flags["output_proj"] and V != H:
        raise ValueError(f"v_dim={V} must equal hidden_size={H} with output_proj=False")
    K = flags["conv_size"]
    if K is not None and _checks.check_positive_int("conv_size", K) < 2:
        raise ValueError(f"conv_size must be None (no convolution) or an int >= 2, got {K!r}")
    _checks.check_choice("form", flags["form"], FORMS)
    L = _checks.check_positive_int("chunk_size", flags["chunk_size"])
    scale = (Q // NH) ** -0.5 if flags["scale"] is None else flags["scale"]
    ranges = {r: _pair(r, flags[r]) for r in ("a_range", "dt_range") if gated}
    _checks.check_factory_args(
        numbers={"scale": scale, "norm_eps": flags["norm_eps"]}
        | {f"{r}[{i}]": v[i] for r, v in ranges.items() for i in (0, 1)},
        functions={"kernel_init": flags["kernel_init"], "conv_init": flags["conv_init"]},
        dtypes={"param_dtype": flags["param_dtype"], "dtype": flags["dtype"]},
    )
    for name, value in (("scale", scale), ("norm_eps", flags["norm_eps"])):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    for name, low in (("a_range", 0.0), ("dt_range", 1e-300)):
        if name in ranges and not low <= ranges[name][0] < ranges[name][1]:
            raise ValueError(
                f"{name} must be (low, high) with {low:g} <= low < high, got {ranges[name]!r}"
            )
    defaults = {
        "num_heads": 1,
        "negative_eigenvalues": False,
        "conv_size": 4,
        "qk_norm": True,
        "output_gate": gated,
        "output_proj": True,
        "resets": False,
        "form": "chunkwise",
    }
    shown = {k: flags[k] for k, v in defaults.items() if flags[k] != v}
    shown |= {"qk_dim": Q} if Q != H else {}
    shown |= {"v_dim": V} if V != H else {}
    shown |= {"chunk_size": L} if L != CHUNK_SIZE else {}
    return _delta.DeltaSpec(
        name=_blocks.describe(factory, H, shown),
        hidden_size=H,
        heads=NH,
        dk=Q // NH,
        dv=V // NH,
        gated=gated,
        negative_eigenvalues=flags["negative_eigenvalues"],
        conv_size=K,
        qk_norm=flags["qk_norm"],
        output_gate=flags["output_gate"],
        output_proj=flags["output_proj"],
        resets=flags["resets"],
        form=flags["form"],
        chunk_size=L,
        scale=float(scale),
        norm_eps=float(flags["norm_eps"]),
        a_range=ranges.get("a_range"),
        dt_range=ranges.get("dt_range"),
        kernel_init=flags["kernel_init"],
        conv_init=flags["conv_init"],
        param_dtype=flags["param_dtype"],
        dtype=flags["dtype"],
    )


def _pair(name: str, value: Any) -> tuple:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
    return tuple(value)


def assemble(spec: _delta.DeltaSpec) -> Cell:
    """The :class:`gatedcells.Cell` of ``spec``: the module's functions bound to the spec by
    value (:class:`~gatedcells.cells._anatomy.Bound`: equal flags give equal cells), the one
    place that binds it."""
    return dataclasses.replace(stepper(spec), scan=Bound(scan, spec))


def stepper(spec: _delta.DeltaSpec) -> Cell:
    """The cell of ``spec`` without its own sequence driver (the recurrent step)."""
    return Cell(
        init_fn=Bound(_delta.init, spec),
        carry_fn=Bound(_delta.initial_carry, spec),
        project=Bound(_delta.project, spec),
        update=Bound(_delta.update, spec),
        check_params=Bound(_delta.check_params, spec),
        output_size=spec.hidden_size,
        name=spec.name,
    )


def scan(spec: _delta.DeltaSpec, params, carry, xs, *, valid, reverse, unroll, grad, remat):
    """The family's sequence driver (:func:`._delta_chunkwise.sequence`, either form)."""
    options = {"valid": valid, "reverse": reverse, "unroll": unroll, "grad": grad}
    return _delta_chunkwise.sequence(spec, stepper(spec), params, carry, xs, remat=remat, **options)
