"""PyPSA's own example networks through nodalopt, against PyPSA's ``optimize()`` (HiGHS).

Usage: ``python -m benchmarks.pypsa_examples ROOT`` where ROOT holds a checkout (or ``git archive``)
of PyPSA's repository (``examples/networks/<name>/<name>/`` and ``test/data/benchmark-sp/``); the
networks are not shipped with nodalopt.  Each network is first solved as written (the result or the
error is printed), then in a variant with what nodalopt does not model removed or fixed (named in
the output), and compared with PyPSA: relative objective difference and the largest LMP difference
over buses whose prices nodalopt flags unique.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

NETWORKS = {
    "ac-dc-meshed": "examples/networks/ac-dc-meshed/ac-dc-meshed",
    "storage-hvdc": "examples/networks/storage-hvdc/storage-hvdc",
    "model-energy": "examples/networks/model-energy/model-energy",
    "scigrid-de": "examples/networks/scigrid-de/scigrid-de",
    "benchmark-sp": "test/data/benchmark-sp",
}


def variant(name: str, n: Any) -> list[str]:
    """Make ``n`` solvable by a DC-OPF without investment; return what was changed.

    Extendable capacities are fixed at the optimum of PyPSA's own ``optimize()`` of the network as
    written (the fix the error message suggests)."""
    done = []
    ext_any = any(len(getattr(n, c)) and f"{a}_extendable" in getattr(n, c) and getattr(n, c)[f"{a}_extendable"].any()
                  for c, a in (("generators", "p_nom"), ("lines", "s_nom"), ("links", "p_nom"),
                               ("storage_units", "p_nom"), ("stores", "e_nom")))
    if ext_any:
        first = n.copy()
        first.optimize(solver_name="highs", include_objective_constant=False)
    for comp, attr in (("generators", "p_nom"), ("lines", "s_nom"), ("links", "p_nom"),
                       ("storage_units", "p_nom"), ("stores", "e_nom")):
        df = getattr(n, comp)
        ext = f"{attr}_extendable"
        if len(df) and ext in df and df[ext].any():
            rows = df.index[df[ext]]
            df.loc[rows, attr] = getattr(first, comp).loc[rows, f"{attr}_opt"]
            df[ext] = False
            done.append(f"{comp}.{ext} -> False ({attr} = PyPSA's {attr}_opt)")
    if len(n.global_constraints):
        n.remove("GlobalConstraint", n.global_constraints.index)
        done.append("global constraints removed")
    if len(n.stores):
        n.remove("Store", n.stores.index)
        done.append("stores removed")
    su = n.storage_units
    if len(su):
        for attr in ("inflow", "state_of_charge_set"):
            if attr in n.storage_units_t and not n.storage_units_t[attr].empty:
                n.storage_units_t[attr] = n.storage_units_t[attr].iloc[:, :0]
                done.append(f"storage_units_t.{attr} removed")
        if (su.standing_loss != 0).any():
            su["standing_loss"] = 0.0
            done.append("storage standing_loss -> 0")
        if (su.marginal_cost != 0).any():
            su["marginal_cost"] = 0.0
            done.append("storage marginal_cost -> 0")
    return done


def main(root: str) -> None:
    import pypsa

    import nodalopt

    logging.getLogger("pypsa").setLevel(logging.ERROR)
    logging.getLogger("linopy").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    for name, rel in NETWORKS.items():
        path = Path(root) / rel
        n = pypsa.Network(str(path))
        print(f"== {name}: {len(n.buses)} buses, {len(n.snapshots)} snapshots")
        try:
            nodalopt.solve(n)
            print("   as written: solved")
        except nodalopt.NodalOptError as exc:
            print(f"   as written: {type(exc).__name__}: {str(exc)[:300]}")
        changes = variant(name, n)
        print(f"   variant: {'; '.join(changes) or 'none'}")
        t0 = time.perf_counter()
        try:
            ds = nodalopt.solve(n)
        except nodalopt.NodalOptError as exc:
            print(f"   variant: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        t_ours = time.perf_counter() - t0
        ref = n.copy()
        t0 = time.perf_counter()
        ref.optimize(solver_name="highs", include_objective_constant=False)
        t_ref = time.perf_counter() - t0
        obj = float(ds.attrs["objective"])
        rel_obj = abs(obj - ref.objective) / max(abs(ref.objective), 1.0)
        theirs = ref.buses_t.marginal_price.iloc[: ds.sizes["time"]]
        ours = ds.lmp.to_pandas()[theirs.columns]
        uniq = ds.lmp_unique.to_pandas()[theirs.columns].to_numpy() if "lmp_unique" in ds else True
        diff = np.abs(ours.to_numpy() - theirs.to_numpy())
        print(f"   objective nodalopt {obj:.6g} PyPSA {ref.objective:.6g} (rel {rel_obj:.1e}); "
              f"max |dLMP| unique {np.max(np.where(uniq, diff, 0)):.1e}, all {diff.max():.1e} $/MWh "
              f"({int(np.sum(uniq))}/{diff.size} unique); time nodalopt {t_ours:.2f} s "
              f"(solver {ds.attrs.get('solve_s', float('nan')):.2f} s), PyPSA {t_ref:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/i19ex")
