"""Distribution feeders (LinDistFlow) attached to a transmission network, and their DLMPs."""

from .feeder import FeederArrays, compile_feeder
from .model import TDOPF
from .td import Forest, TDNetwork

__all__ = ["TDNetwork", "TDOPF", "FeederArrays", "Forest", "compile_feeder"]
