"""Running a cell over time: :func:`unroll`, the length masks, the custom-gradient scan of
cells with a :class:`~gatedcells.MatmulSplit`, and the diagonal linear recurrence."""

from . import _flax_options as _flax_options  # registers Flax's attributes on Cell
from ._linear import linear_recurrence as linear_recurrence
from ._masks import mask_inputs as mask_inputs
from ._masks import mask_step as mask_step
from ._masks import valid_mask as valid_mask
from ._sharded_unroll import sharded_unroll as sharded_unroll
from ._unroll import GRADS as GRADS
from ._unroll import default_unroll as default_unroll
from ._unroll import unroll as unroll
from ._unroll import unroll_time_major as unroll_time_major
