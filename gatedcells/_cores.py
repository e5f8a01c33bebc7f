"""The host's CPU cores as JAX devices: :func:`use_cpu_cores`, and when a batch is split.

XLA:CPU runs a recurrent loop's small matmuls on one core, so one CPU device leaves the
other cores idle. JAX can instead present the host as several CPU devices
(``jax_num_cpu_devices``); a batch split over them (``fit``'s data-parallel mesh, the
bench) runs on every core, each device scanning its share of the rows. The device count is
fixed when JAX's backend starts, hence a helper to call first thing, before any JAX
operation.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax

#: The environment variable that chooses the CPU device count for gatedcells' programs
#: (``gatedcells train``, ``demo``, ``zoo``, ``bench`` use it only when it is set): ``N``
#: asks for ``N``, ``1`` keeps JAX's single CPU device.
ENV = "GATEDCELLS_CPU_DEVICES"

#: The fewest and the most batch rows per device worth a split (see :func:`splits`).
MIN_ROWS_PER_DEVICE, MAX_ROWS_PER_DEVICE = 8, 64


def use_cpu_cores(n: int | None = None) -> str:
    """Ask JAX for one CPU device per core (or ``n``), if JAX has not started and nobody chose.

    Sets ``jax.config.update("jax_num_cpu_devices", n or os.cpu_count())``. It must run
    before JAX's backend starts (before the first JAX operation: creating an array,
    ``jax.devices()``); ``import jax`` and ``import gatedcells`` do not start it. After
    that it does nothing and says so: it never raises because JAX has started. It also
    leaves the count alone when the user chose one, and says which way:

    - ``GATEDCELLS_CPU_DEVICES`` set (``1``: one device, the opt-out; ``N``: ``N``
      devices, whatever ``n``);
    - ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``;
    - ``jax_num_cpu_devices`` already set (``JAX_NUM_CPU_DEVICES`` or
      ``jax.config.update``).

    Only the CPU backend's count changes: on a GPU or TPU host ``jax.devices()`` still
    lists the accelerators. The ``gatedcells`` command calls this first for ``train``,
    ``demo``, ``zoo`` and ``bench`` (``GATEDCELLS_CPU_DEVICES=1`` opts out); in a script
    or notebook, call it yourself right after the imports. :func:`gatedcells.training.fit`
    then splits each batch over the devices where it pays (8 to 64 rows a device).

    Args:
      n: the number of CPU devices; ``None``: ``os.cpu_count()``.

    Returns:
      One line saying what it did, or why it did nothing.

    Raises:
      ValueError: ``n`` not a positive int, or ``GATEDCELLS_CPU_DEVICES`` not one.

    Examples:
      >>> import jax, gatedcells as gc
      >>> n = jax.device_count()  # a JAX operation: the backend starts, the count is fixed
      >>> gc.use_cpu_cores(4).startswith("left as it is")
      True
    """
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    chosen = os.environ.get(ENV)
    if chosen is not None:
        if not chosen.strip().isdigit() or int(chosen) < 1:
            raise ValueError(f"{ENV} must be a positive integer, got {chosen!r}")
        if int(chosen) == 1:
            return f"left as it is: {ENV}=1 (one CPU device)"
        n = int(chosen)
    elif "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return "left as it is: XLA_FLAGS sets --xla_force_host_platform_device_count"
    elif jax.config.jax_num_cpu_devices != -1:
        return f"left as it is: jax_num_cpu_devices is {jax.config.jax_num_cpu_devices}"
    n = n or os.cpu_count() or 1
    if n == 1:
        return "left as it is: one core"
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # the backend has started: the count is fixed
        return (
            "left as it is: JAX has already started its backend (call use_cpu_cores before "
            "any JAX operation)"
        )
    return f"{n} CPU devices"


def splits(batch_size: int, devices: int) -> bool:
    """Whether a batch of ``batch_size`` rows is worth splitting over ``devices`` devices:
    they divide it, and each gets 8 to 64 rows (:data:`MIN_ROWS_PER_DEVICE`,
    :data:`MAX_ROWS_PER_DEVICE`).

    Measured on an idle 2-core machine, forward+backward of the LSTM and the GRU, 2 devices
    against one (``python benchmarks/split_sweep.py``, T=64, I=128; two runs in
    benchmarks/results/split-sweep-cpu.md): 32 and 64 rows a device at H=128 1.24-2.48x
    faster, 16 rows 1.07-1.29x; 32-64 rows at H=256-512, or 128 rows at H=128,
    0.97-1.15x; 128 rows at H=512 0.94-0.97x, where one device's matmuls already use both
    cores. The base shape (B=32, T=128) is 1.4-1.75x (``benchmarks/cores.py``). The floor
    of 8 is a guess between 16 rows and B=1 (nothing to split). On a loaded machine (load
    average 7-9 on 2 cores) every split measured slower, 0.4-0.65x: the second core is not
    free there."""
    if devices < 2 or batch_size % devices:
        return False
    return MIN_ROWS_PER_DEVICE <= batch_size // devices <= MAX_ROWS_PER_DEVICE


def under_mesh(mesh: jax.sharding.Mesh, fn: Callable) -> Callable:
    """``fn`` called (and so traced) under ``jax.set_mesh(mesh)``: the library's code then
    knows that jit may split its batch (the fused gradient keeps a split batch where it is,
    ``gatedcells.sequence._fused._in_place``)."""

    def run(*args):
        with jax.set_mesh(mesh):
            return fn(*args)

    return run
