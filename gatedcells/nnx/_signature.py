"""``__signature__`` of the NNX layers: their ``__init__``'s, which NNX's metaclass hides.

``flax.nnx.Module``'s metaclass defines ``__call__(cls, *args, **kwargs)``, so
``inspect.signature(gatedcells.nnx.RNN)`` (and Sphinx, and IDEs) would show
``RNN(*args, **kwargs)``. :class:`InitSignature` gives a class the signature of its own
``__init__`` (without ``self``, annotations evaluated), and nothing to its instances, whose
signature stays their ``__call__``'s.
"""

from __future__ import annotations

import inspect
from typing import Any


class InitSignature:
    """A descriptor: ``cls.__signature__`` is ``cls.__init__``'s signature without ``self``."""

    def __get__(self, instance: Any, owner: type) -> inspect.Signature:
        if instance is not None:  # an instance's signature is its __call__'s
            raise AttributeError("__signature__")
        try:
            sig = inspect.signature(owner.__init__, eval_str=True)
        except NameError:  # an annotation that does not evaluate: keep it as written
            sig = inspect.signature(owner.__init__)
        return sig.replace(parameters=list(sig.parameters.values())[1:])
