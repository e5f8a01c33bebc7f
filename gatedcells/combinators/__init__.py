"""Cells of cells: stacks, bidirectional layers, resets, a learned initial carry and the
regularisers. Each takes cells and returns a :class:`~gatedcells.Cell`."""

from ._carry import LearnedCarry as LearnedCarry
from ._carry import LearnedCarryParams as LearnedCarryParams
from ._carry import learned_initial_carry as learned_initial_carry
from ._carry import resettable as resettable
from ._regularization import ZoneoutCarry as ZoneoutCarry
from ._regularization import recurrent_dropout as recurrent_dropout
from ._regularization import weight_drop as weight_drop
from ._regularization import zoneout as zoneout
from ._stack import bidirectional as bidirectional
from ._stack import stack as stack
