"""Speed of gatedcells against Flax, Equinox and PyTorch, side by side in one process.

    python benchmarks/run.py                       # every shape, cell and installed peer
    python benchmarks/run.py --shapes base --cells lstm --out results.json
    gatedcells bench ...                           # the same, from the installed command

Peers are optional (``pip install "gatedcells[bench]"`` and a CPU build of torch); missing
ones are skipped and said so. See ``gatedcells/bench/`` for the method.
"""

import importlib.util
import sys

if importlib.util.find_spec("torch") is not None:
    import torch  # noqa: F401  (before jax: see gatedcells.bench._torch_first)

from gatedcells.bench import main

if __name__ == "__main__":
    sys.exit(main())
