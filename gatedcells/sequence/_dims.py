"""Sizes of axes that may be symbolic: ``jax.export`` with ``jax.export.symbolic_shape``.

A function exported for a symbolic batch or length (``"b, t, 4"``) is traced once with
dimension expressions in place of ints: they support arithmetic (``+``, ``*``, ``//``,
``jax.core.max_dim``) and decidable comparisons (``t >= 1``), and raise on undecidable
ones (``t <= 32``). The drivers decide their layout with these helpers, which treat a
symbolic size as unknown: a chunked loop then pads time to whole chunks of the given size
(the padding, of symbolic size, may be empty when the function is called), and an option
that needs ``T`` itself says so in one line.
"""

from __future__ import annotations

from typing import Any

import jax


def is_known(n: Any) -> bool:
    """Whether the size ``n`` is an int, not a symbolic dimension of ``jax.export``."""
    return not jax.export.is_symbolic_dim(n)


def chunk_layout(steps: Any, chunk_size: int) -> tuple[int, Any, Any]:
    """``(size, chunks, pad)``: ``steps`` split into ``chunks`` chunks of ``size`` steps, the
    last one padded with ``pad`` steps. ``size = min(chunk_size, steps)``, or
    ``chunk_size`` when ``steps`` is symbolic (then ``chunks`` and ``pad`` are symbolic too,
    and the caller pads whatever ``pad`` turns out to be: see :func:`padded`)."""
    size = min(chunk_size, steps) if is_known(steps) else chunk_size
    chunks = -(-steps // size)
    return size, chunks, chunks * size - steps


def padded(pad: Any) -> bool:
    """Whether a chunked loop pads its last chunk: ``pad > 0``, or a symbolic ``pad``."""
    return not is_known(pad) or pad > 0


def require_known(steps: Any, option: str, instead: str) -> None:
    """Raise a one-line ``ValueError`` when the length ``steps`` is symbolic and ``option``
    needs it concretely; ``instead`` says what works with a symbolic length."""
    if not is_known(steps):
        raise ValueError(
            f"{option} needs a concrete number of time steps, got T={steps} (a symbolic "
            f"dimension of jax.export): {instead}"
        )
