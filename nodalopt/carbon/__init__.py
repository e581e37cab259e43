"""Carbon signals from a solved DC-OPF.

* :mod:`.factors` - emission factors per fuel (``data/emission_factors.csv``, IPCC 2006
  fuel factors and typical efficiencies) and a documented synthetic assignment.
* :mod:`.flow` - carbon emission flow: average intensity of the power consumed at each node.
* :mod:`.lme` - locational marginal emissions by implicit differentiation of the optimum.
"""

from .factors import ALIASES, factor_table, factors_from_fuel, synthetic_factors
from .flow import carbon_emission_flow
from .lme import locational_marginal_emissions

__all__ = ["ALIASES", "factor_table", "factors_from_fuel", "synthetic_factors", "carbon_emission_flow",
           "locational_marginal_emissions"]
