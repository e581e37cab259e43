"""nodalopt: nodal electricity prices (LMPs) from power networks."""

from .admm.coordinator import ADMM, ADMMSettings
from .dcopf import DCOPF, solve
from .distribution import TDOPF, TDNetwork
from .distribution.single import solve_feeder
from .errors import ConvergenceError, InfeasibleError, InputError, NodalOptError, SolverError, UnboundedError
from .io.writeback import to_pypsa, write_back
from .network import MatpowerCase, NetworkArrays, compile_network, load_case
from .results import to_netcdf
from .signals import explain

__all__ = ["DCOPF", "solve", "TDNetwork", "TDOPF", "solve_feeder", "ADMM", "ADMMSettings",
           "load_case", "compile_network", "NetworkArrays", "MatpowerCase",
           "to_netcdf", "explain", "NodalOptError", "InputError", "InfeasibleError", "UnboundedError",
           "SolverError", "ConvergenceError", "to_pypsa", "write_back"]
__version__ = "0.1.0"
