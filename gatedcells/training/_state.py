"""What a training run carries from step to step, and one pure step of it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array
Params = Any
Batch = Any
LossFn = Callable[[Params, Batch, Array], tuple[Array, dict[str, Array]]]
EvalFn = Callable[[Params], dict[str, Array]]


class TrainState(NamedTuple):
    """The whole state of a training run, carried from step to step (a pytree).

    Attributes:
      params: the model's params.
      opt_state: the optimizer's state.
      step: int32 scalar, the number of updates applied so far.
      key: the PRNG key the next step splits for its data and its loss.
    """

    params: Params
    opt_state: optax.OptState
    step: Array
    key: Array

    @classmethod
    def create(
        cls, params: Params, optimizer: optax.GradientTransformation, key: Array
    ) -> TrainState:
        """The state before the first step: ``optimizer.init(params)``, ``step = 0``."""
        with _standard_promotion():
            opt_state = optimizer.init(params)
        return cls(params, opt_state, jnp.zeros((), jnp.int32), key)


def train_step(
    loss_fn: LossFn, optimizer: optax.GradientTransformation
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
    """A pure, jittable training step from a loss function and an optax optimizer.

    Args:
      loss_fn: ``(params, batch, key) -> (loss, metrics)``, see the module docstring.
      optimizer: any ``optax.GradientTransformation`` (chain ``optax.clip_by_global_norm``
        in front of it to clip).

    Returns:
      ``step(state, batch) -> (state, metrics)``: one update of ``state.params``, with
      ``metrics`` holding ``"loss"``, the loss function's metrics and ``"grad_norm"``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gatedcells import training
      >>> loss_fn = lambda p, batch, key: (jnp.sum((p - batch) ** 2), {})
      >>> step = jax.jit(training.train_step(loss_fn, optax.sgd(0.25)))
      >>> state = training.TrainState.create(jnp.zeros(2), optax.sgd(0.25), jax.random.key(0))
      >>> state, metrics = step(state, jnp.array([1.0, -1.0]))
      >>> state.params.tolist(), float(metrics["loss"]), int(state.step)
      ([0.5, -0.5], 2.0, 1)
    """

    check_loss_and_optimizer(loss_fn, optimizer)

    def checked_loss(params, batch, key):
        out = loss_fn(params, batch, key)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)):
            got = f"an array of shape {jnp.shape(out)}" if hasattr(out, "shape") else repr(out)
            raise TypeError(
                "loss_fn must return (loss, metrics): a scalar and a dict of scalars (may be "
                f"empty), got {got}"
            )
        loss = out[0]
        if jnp.shape(loss) != () or not jnp.issubdtype(jnp.result_type(loss), jnp.floating):
            raise TypeError(
                f"loss_fn's loss must be a floating scalar, got shape {jnp.shape(loss)} and "
                f"dtype {jnp.result_type(loss)}"
            )
        return out

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Array]]:
        key, loss_key = jax.random.split(state.key)
        grad_fn = jax.value_and_grad(checked_loss, has_aux=True)
        (loss, metrics), grads = grad_fn(state.params, batch, loss_key)
        with _standard_promotion():  # optax's own code relies on implicit promotion
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, **metrics, "grad_norm": _global_norm(grads)}
        return TrainState(params, opt_state, state.step + 1, key), metrics

    return step


def clipped(optimizer: optax.GradientTransformation, clip_norm: float | None):
    """``optimizer`` behind a clip of the gradient to the global norm ``clip_norm`` (``None``:
    ``optimizer`` as it is)."""
    if clip_norm is None:
        return optimizer
    if not clip_norm > 0:
        raise ValueError(f"clip_norm must be positive or None, got {clip_norm!r}")
    return optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)


def check_loss_and_optimizer(loss_fn: Any, optimizer: Any) -> None:
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be a function (params, batch, key) -> (loss, metrics), got {loss_fn!r}"
        )
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), got "
            f"{optimizer!r}"
        )


@contextlib.contextmanager
def _standard_promotion():
    """JAX's default promotion rules, whatever the user's config (optax's adam computes
    ``decay ** count`` with an int32 count, an error under ``jax_numpy_dtype_promotion=
    "strict"``)."""
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


def _global_norm(tree: Any) -> Array:
    leaves = [jnp.sum(jnp.square(leaf.astype(jnp.float32))) for leaf in jax.tree.leaves(tree)]
    return jnp.sqrt(sum(leaves, jnp.zeros((), jnp.float32)))
