"""Build the README figures: ``python docs/make_figures.py`` (about a minute).

Writes ``docs/img/feeder_dlmp.png`` (DLMPs on feeder f1 at 19:00, the evening peak with
the EVs charging) and ``docs/img/dlmp_heatmap.png`` (feeder f1, every hour).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nodalopt  # noqa: E402
from nodalopt.distribution.examples import case33bw_der, ev_fleet  # noqa: E402
from nodalopt.plots import plot_feeder, plot_price_heatmap  # noqa: E402

OUT = Path(__file__).resolve().parent / "img"
PEAK_HOUR = 19


def main() -> None:
    td = nodalopt.TDNetwork(nodalopt.load_case("case118_200mva"))
    feeder = case33bw_der()
    td.add_feeder("f1", feeder, at_bus=59, evs=ev_fleet())  # buses are pandapower (0-based) indices
    td.add_feeder("f2", feeder, at_bus=79, evs=ev_fleet())
    ds = nodalopt.solve(td, hours=24)
    OUT.mkdir(exist_ok=True)

    ax = plot_feeder(ds, "f1", time=PEAK_HOUR)
    ax.figure.savefig(OUT / "feeder_dlmp.png", dpi=100)
    ax = plot_price_heatmap(ds, feeder="f1")
    ax.figure.savefig(OUT / "dlmp_heatmap.png", dpi=100)

    f1 = ds.dlmp.where(ds.feeder == "f1", drop=True)
    print(f"f1 dlmp {float(f1.min()):.2f}..{float(f1.max()):.2f} $/MWh; highest mean at hour "
          f"{int(f1.mean('dnode').argmax('time'))}; wrote {OUT / 'feeder_dlmp.png'}, {OUT / 'dlmp_heatmap.png'}")


if __name__ == "__main__":
    main()
