"""The benchmark cases: one :class:`Case` per entry, with its loader, fix-ups and periods.

Adding a case is one ``register(Case(...))`` call.  Every fix-up applied to a
built-in network is either a named case of the package (the PEGASE cases:
``case1354pegase_fixed`` ... in :mod:`nodalopt.network.examples`, loadable by name from
Python and the CLI) or a named function here; their docstrings are copied into the
results (``benchmarks/results/latest.md``), so the numbers can be reproduced.

Every script in ``benchmarks/`` takes its cases from this module: :data:`CASES` for the
DC-OPF suite, and the names and builders under "cases of the other benchmark scripts"
(T&D, ADMM, batch, carbon, warm-up).

Profiles: multi-period runs scale every fixed load by the shipped 24-hour demo
load shape (``nodalopt/data/demo_24h.csv``, 0.64 to 1.00 of the case's load);
generator limits are constant.  Without storage or ramp limits the periods are
independent, but they are solved as one problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20240601  #: = nodalopt.network.examples.PEGASE_SEED (PEGASE costs); SEED + 1 seeds the re-solve wiggle


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    name : label in the results
    source : a name :func:`nodalopt.load_case` knows: pandapower built-in (``"case118"``), nodalopt
        example (``"case1354pegase_fixed"``) or PGLib name
    fixups : functions ``net -> None`` applied in place after loading (pandapower nets only)
    periods : numbers of periods to run
    tools : peers to compare with (``"pandapower"`` runs single-period only)
    dc_model : nodalopt's branch model (``"pglib"`` for the PGLib baseline)
    resolve : also time a second ``DCOPF.solve`` with new profiles
    quick : part of ``--quick``
    """

    name: str
    source: str
    fixups: tuple[Callable[[Any], None], ...] = ()
    periods: tuple[int, ...] = (1, 24)
    tools: tuple[str, ...] = ("nodalopt", "pandapower", "pypsa")
    dc_model: str = "pandapower"
    resolve: bool = False
    quick: bool = False
    group: str = "main"
    buses: int = 0
    baseline_dc: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """The network with fix-ups applied (pandapower net or MatpowerCase)."""
        from nodalopt import load_case

        net = load_case(self.source)
        for f in self.fixups:
            f(net)
        return net


# ---------------------------------------------------------------------- fix-ups
CASE118_RATING_MVA = 175.0


def case118_congestion(net: Any) -> None:
    """case118: every line and transformer rated CASE118_RATING_MVA (175 MVA) instead of 9,900 MVA,
    except one branch at each pure series bus (see below).

    Implemented through ``max_loading_percent`` (line rating = sqrt(3) x
    max_i_ka x vn_kv x parallel x max_loading_percent / 100, transformer
    rating = sn_mva x max_loading_percent / 100), so pandapower, nodalopt and
    PyPSA read the same limit.  Buses with exactly two branches and no load,
    generator or shunt (pandapower buses 8, 62, 80) carry the same flow on both
    branches; when one binds so does the other and the price of the bus in
    between is not unique (PEER-NOTES: 5.7 $/MWh between solvers at 200 MVA).
    The branch with the larger table position (lines before trafos) at such a
    bus therefore keeps no limit (NaN); the flow is still limited by its twin.
    """
    vn = net.bus.vn_kv.loc[net.line.from_bus].to_numpy(float)
    cap = np.sqrt(3.0) * net.line.max_i_ka.to_numpy(float) * vn * net.line.parallel.to_numpy(float)
    net.line["max_loading_percent"] = 100.0 * CASE118_RATING_MVA / cap
    net.trafo["max_loading_percent"] = 100.0 * CASE118_RATING_MVA / net.trafo.sn_mva.to_numpy(float)
    ends = [("line", i, b) for i, b in zip(net.line.index, net.line.from_bus, strict=True)]
    ends += [("line", i, b) for i, b in zip(net.line.index, net.line.to_bus, strict=True)]
    ends += [("trafo", i, b) for i, b in zip(net.trafo.index, net.trafo.hv_bus, strict=True)]
    ends += [("trafo", i, b) for i, b in zip(net.trafo.index, net.trafo.lv_bus, strict=True)]
    injecting = set()
    for t in ("load", "gen", "sgen", "ext_grid", "shunt", "storage"):
        injecting |= set(net[t].bus)
    at: dict[int, list[tuple[str, int]]] = {}
    for table, i, b in ends:
        at.setdefault(int(b), []).append((table, int(i)))
    for b, brs in at.items():
        if len(brs) == 2 and b not in injecting:
            table, i = sorted(brs, key=lambda x: (x[0] != "line", x[1]))[1]
            net[table].loc[i, "max_loading_percent"] = np.nan



STORAGE_UNITS = 6
STORAGE_MW, STORAGE_MWH = 200.0, 800.0
RAMP_FRACTION = 0.25


def ramps_and_storage(net: Any) -> None:
    """Ramps and storage: every gen and the ext_grid get ramp limits of 25 % of max_p_mw per hour
    (up and down); 6 batteries of 200 MW / 800 MWh (95 % charge and 95 % discharge
    efficiency, 50 % initial and final state of charge) sit at the 6 buses with
    the largest fixed load.
    """
    import pandapower as pp

    for table in ("gen", "ext_grid"):
        df = net[table]
        r = RAMP_FRACTION * df.max_p_mw.to_numpy(float)
        net[table]["ramp_up_mw_per_h"] = r
        net[table]["ramp_down_mw_per_h"] = r
    by_bus = net.load.groupby("bus").p_mw.sum().sort_values(ascending=False)
    for bus in by_bus.index[:STORAGE_UNITS]:
        pp.create_storage(net, bus=int(bus), p_mw=0.0, max_e_mwh=STORAGE_MWH, min_e_mwh=0.0,
                          soc_percent=50.0, max_p_mw=STORAGE_MW, min_p_mw=-STORAGE_MW,
                          controllable=True)
    net.storage["charge_efficiency"] = 0.95
    net.storage["discharge_efficiency"] = 0.95


def source_fixups(case: Case) -> tuple[Callable[[Any], None], ...]:
    """The fix-ups inside the case's source: a nodalopt PEGASE example applies :data:`PEGASE_FIXUPS`."""
    from nodalopt.network.examples import EXAMPLES, PEGASE_FIXUPS  # imported on use: workers time their imports

    return PEGASE_FIXUPS if case.source.endswith("pegase_fixed") and case.source in EXAMPLES else ()


def fixup_docs(case: Case) -> list[tuple[str, str]]:
    """(name, docstring) of every fix-up behind ``case``: those of its source example, then its own."""
    return [(f.__name__, " ".join((f.__doc__ or "").split())) for f in (*source_fixups(case), *case.fixups)]


# --------------------------------------------------------------------- registry
CASES: dict[str, Case] = {}


def register(case: Case) -> Case:
    if case.name in CASES:
        raise ValueError(f"duplicate benchmark case {case.name!r}")
    CASES[case.name] = case
    return case


register(Case("case118", "case118", fixups=(case118_congestion,), quick=True, buses=118))
register(Case("case1354pegase_fixed", "case1354pegase_fixed", quick=True, buses=1354))
register(Case("case2869pegase_fixed", "case2869pegase_fixed", buses=2869))
register(Case("case9241pegase_fixed", "case9241pegase_fixed", buses=9241))
register(Case("case1354pegase_fixed+ramps+storage", "case1354pegase_fixed", fixups=(ramps_and_storage,),
              periods=(24,), tools=("nodalopt", "pypsa"), resolve=True, quick=True, buses=1354))


def _pglib_baseline(d: Path) -> dict[str, tuple[int, float]]:
    """Case name -> (buses, DC objective $/h) from BASELINE.md, typical operating conditions."""
    out: dict[str, tuple[int, float]] = {}
    text = (d / "BASELINE.md").read_text(encoding="utf-8") if (d / "BASELINE.md").is_file() else ""
    for line in text.splitlines():
        m = re.match(r"\| (pglib_opf_\S+) \| (\d+) \| \d+ \| ([0-9.e+\-]+) \|", line)
        if m and "__" not in m.group(1) and m.group(1) not in out:
            out[m.group(1)] = (int(m.group(2)), float(m.group(3)))
    return out


#: PGLib cases in --quick
PGLIB_QUICK = ("pglib_opf_case14_ieee", "pglib_opf_case118_ieee", "pglib_opf_case1354_pegase")


def _register_pglib() -> None:
    from nodalopt.network import pglib_dir

    d = pglib_dir()
    if d is None:
        return
    base = _pglib_baseline(d)
    files = sorted(d.glob("pglib_opf_*.m"))
    nb = {f.stem: base.get(f.stem, (0, None)) for f in files}
    for f in sorted(files, key=lambda f: (nb[f.stem][0], f.stem)):
        if "__" in f.stem:  # api / sad variants are not part of the TYP set
            continue
        buses, dc = nb[f.stem]
        register(Case(f.stem, f.stem, periods=(1,), tools=("nodalopt", "pypsa"), dc_model="pglib",
                      group="pglib", quick=f.stem in PGLIB_QUICK, buses=buses, baseline_dc=dc))


_register_pglib()


# ------------------------------------------------------ cases of the other benchmark scripts
#: transmission network of the T&D benchmarks (``td_scale``, ``admm_scale``, ``admm_run``, ``--td``)
TD_TRANSMISSION = "case118_200mva"
#: the case ``batch_throughput`` saves as pandapower JSON and copies
BATCH_CASE = "case300"
#: the case of ``carbon_overhead`` (24 hours, synthetic emission factors)
CARBON_CASE = "case1354pegase_fixed"
#: the synthetic LinDistFlow QP batch of ``qp_kernel`` (``qp_kernel.feeder_batch``; no network behind it)
QP_KERNEL_BATCH: dict[str, int] = {"K": 200, "buses": 24, "hours": 24, "storage": 4, "seed": 0}
#: untimed warm-up solve of each worker: built-in cases / PGLib cases (no pandapower import)
WARMUP_CASE, WARMUP_PGLIB = "case9", "pglib_opf_case5_pjm"


def load(name: str) -> Any:
    """A case by name: a :data:`CASES` entry (fix-ups applied) or anything :func:`nodalopt.load_case` knows."""
    if name in CASES:
        return CASES[name].load()
    from nodalopt import load_case

    return load_case(name)


def td_feeder(battery: bool = True) -> Any:
    """The feeder of the T&D benchmarks: ``nodalopt.distribution.examples.case33bw_der``."""
    from nodalopt.distribution.examples import case33bw_der

    return case33bw_der(battery=battery)


def td_network(n: int, evs: bool = True, prefix: str = "f") -> Any:
    """:data:`TD_TRANSMISSION` + ``n`` :func:`td_feeder` copies placed by ``spread_feeders``, each with the
    demo EV fleet (``ev_fleet()``) when ``evs``."""
    from nodalopt.distribution import TDNetwork
    from nodalopt.distribution.examples import ev_fleet, spread_feeders

    td = TDNetwork(load(TD_TRANSMISSION))
    spread_feeders(td, td_feeder(), n, prefix=prefix, evs=ev_fleet() if evs else None)
    return td


def select(names: list[str] | None, quick: bool) -> list[Case]:
    """Cases by name (``all``, ``main``, ``pglib`` or exact names / regexes), optionally only quick ones."""
    if not names or names == ["all"]:
        cases = list(CASES.values())
    else:
        cases = []
        for n in names:
            if n in ("main", "pglib"):
                hit = [c for c in CASES.values() if c.group == n]
            elif n in CASES:
                hit = [CASES[n]]
            else:
                hit = [c for c in CASES.values() if re.fullmatch(n, c.name)]
            if not hit:
                raise SystemExit(f"unknown case {n!r}; known: main, pglib, {', '.join(CASES)}")
            cases += [c for c in hit if c not in cases]
    if quick:
        cases = [c for c in cases if c.quick]
    return cases


def load_shape(T: int) -> np.ndarray:
    """Per-period load scaling: the demo shape for T > 1, 1.0 for T = 1."""
    if T == 1:
        return np.ones(1)
    from nodalopt.profiles import demo_profiles

    s = demo_profiles()["load"]
    hours = np.arange(T) % 24
    return np.interp(hours, s.index.to_numpy(float), s.to_numpy(float), period=24)


def resolve_shape(T: int) -> np.ndarray:
    """The 'new day' for the re-solve: the demo shape 3 % lower with a seeded +-2 % wiggle."""
    rng = np.random.default_rng(SEED + 1)
    return load_shape(T) * 0.97 * (1.0 + rng.uniform(-0.02, 0.02, T))


def describe_profiles() -> str:
    return ("multi-period runs scale all fixed loads by the shipped 24-hour demo load shape "
            "(nodalopt/data/demo_24h.csv, 0.64-1.00); the re-solve uses that shape x 0.97 with a "
            f"seeded +-2 % wiggle (default_rng({SEED + 1})).")


__all__ = ["Case", "CASES", "register", "select", "load_shape", "resolve_shape", "fixup_docs", "source_fixups",
           "describe_profiles", "load", "td_feeder", "td_network", "TD_TRANSMISSION", "BATCH_CASE", "CARBON_CASE",
           "WARMUP_CASE", "WARMUP_PGLIB", "QP_KERNEL_BATCH"]
