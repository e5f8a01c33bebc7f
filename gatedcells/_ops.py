"""Building blocks shared by the variant cells: layer normalisation, chrono initialisation
and the checks of optional parameter fields."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._cell import Array, Params


def layer_norm(z: Array, scale: Array, bias: Array | None, eps: float) -> Array:
    r"""Layer normalisation of ``z [..., N]`` over its last axis (Ba et al. 2016).

    .. math:: \mathrm{LN}(z) = \gamma \odot (z - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta

    ``scale`` (:math:`\gamma`) and ``bias`` (:math:`\beta`, or ``None``) are ``[N]``.
    """
    mean = jnp.mean(z, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(z - mean), axis=-1, keepdims=True)
    out = (z - mean) * jax.lax.rsqrt(var + jnp.asarray(eps, z.dtype))
    out = out * scale.astype(z.dtype).reshape((1,) * (z.ndim - 1) + scale.shape)
    if bias is not None:
        out = out + bias.astype(z.dtype).reshape((1,) * (z.ndim - 1) + bias.shape)
    return out


def chrono_bias(key: Array, size: int, t_max: float, dtype: Any) -> Array:
    r"""Chrono initialisation (Tallec & Ollivier 2018): :math:`\log \mathcal{U}(1, T_{max}-1)`.

    A gate bias drawn so that the characteristic forgetting times
    :math:`1/(1-\sigma(b))` of the units spread up to ``t_max``, the longest dependency
    expected.
    """
    u = jax.random.uniform(key, (size,), jnp.float32, 1.0, t_max - 1.0)
    return jnp.log(u).astype(dtype)


def check_t_max(chrono) -> None:
    if chrono is None:
        return
    if isinstance(chrono, bool) or not isinstance(chrono, int | float) or chrono <= 2:
        raise ValueError(
            f"chrono must be None or T_max > 2 (the longest dependency expected, in steps), "
            f"got {chrono!r}"
        )


def set_block(b: Array, k: int, hidden_size: int, value: Array) -> Array:
    """``b [G*H]`` with its ``k``-th block of size ``H`` replaced by ``value``."""
    return b.at[k * hidden_size : (k + 1) * hidden_size].set(value.astype(b.dtype))


def check_absent(name: str, params: Params, fields: tuple[str, ...]) -> None:
    """Fields that this configuration of a cell does not have must be ``None``."""
    for field in fields:
        if getattr(params, field, None) is not None:
            raise ValueError(
                f"params do not belong to this {name}: params.{field} must be None (this "
                f"configuration has no {field})"
            )


def check_rate(name: str, rate) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {rate!r}")
    return float(rate)
