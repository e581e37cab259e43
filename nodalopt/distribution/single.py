"""One feeder under a given substation price: DLMPs without a transmission model.

The common distribution study prices a feeder against a known wholesale price at its
substation (a day-ahead series, a flat tariff).  :func:`solve_feeder` builds that study
as the T&D model (:class:`~nodalopt.distribution.TDOPF`) over a one-bus transmission
network whose only element is the substation: a source without power limits, in either
direction, whose cost in each period is the given price.  The result is the T&D Dataset
(``dlmp`` and its components, voltages, substation power); the transmission ``lmp``
equals the price.

On the command line: ``nodalopt feeder case33bw --price 100``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputError
from ..network.arrays import DISPATCHABLE, NetworkArrays
from .model import TDOPF
from .td import TDNetwork

#: name of the substation source in the result's ``gen`` coordinate
SUBSTATION = "substation"
#: largest price CSV file the command line reads, bytes
MAX_PRICE_CSV_BYTES = 20 * 1024 * 1024
#: TDOPF options solve_feeder does not accept (the one-bus network has no emission data or DC model)
_REFUSED = ("carbon_price", "co2_cap", "emission_factors", "dc_model")


def substation_network(name: str = SUBSTATION, price: float = 0.0) -> NetworkArrays:
    """One bus and one source without limits at ``price`` $/MWh: the transmission side of :func:`solve_feeder`."""
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
    return NetworkArrays(
        name=name, base_mva=1.0, n_node=1, ref_node=np.zeros(1, np.int64), node_island=np.zeros(1, np.int64),
        node_fixed_demand=np.zeros(1), bus_ids=np.zeros(1, np.int64), bus_node=np.zeros(1, np.int64),
        br_names=np.zeros(0, dtype=object), br_f=empty_i, br_t=empty_i, br_b=empty_f, br_shift=empty_f,
        br_rate=empty_f, br_angmin=empty_f, br_angmax=empty_f,
        gen_names=np.array([SUBSTATION], dtype=object), gen_node=np.zeros(1, np.int64),
        gen_kind=np.array([DISPATCHABLE]), gen_pmin=np.array([-np.inf]), gen_pmax=np.array([np.inf]),
        gen_c0=np.zeros(1), gen_c1=np.array([float(price)]), gen_c2=np.zeros(1),
        gen_ramp_up=np.array([np.inf]), gen_ramp_down=np.array([np.inf]),
        meta={"source": "nodalopt.solve_feeder: substation at a given price"},
    )


def price_series(price: Any, hours: int | None, period_hours: float | None
                 ) -> tuple[np.ndarray, pd.Timestamp | None, float]:
    """Validate ``price`` -> (price per period $/MWh, start time or None, period length h).

    A scalar lasts ``hours`` periods (1 by default); a sequence, ``pandas.Series`` or 1-D
    ``DataArray`` gives one price per period, and a ``DatetimeIndex`` (or ``time``
    coordinate) gives the start time and, when ``period_hours`` is not set, the period length.
    """
    index: Any = None
    if isinstance(price, xr.DataArray):
        if price.ndim > 1:
            raise InputError(f"price: a 1-D series of $/MWh per period, got a DataArray of dims {price.dims}.")
        if price.ndim == 1:
            index = price.indexes.get(price.dims[0])
        price = price.to_numpy()
    elif isinstance(price, pd.DataFrame):
        if price.shape[1] != 1:
            raise InputError(f"price: a DataFrame needs exactly one column, got {list(price.columns)}.")
        index, price = price.index, price.iloc[:, 0].to_numpy()
    elif isinstance(price, pd.Series):
        index, price = price.index, price.to_numpy()
    try:
        arr = np.asarray(price, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"price: a number or a series of numbers ($/MWh), got {type(price).__name__}.") from None
    if arr.ndim > 1:
        raise InputError(f"price: a number or a 1-D series ($/MWh per period), got shape {arr.shape}.")
    if arr.ndim == 0:
        n = 1 if hours is None else int(hours)
        arr = np.full(n, float(arr))
    elif arr.size == 0:
        raise InputError("price: the series is empty; give one price per period.")
    elif hours is not None and int(hours) != arr.size:
        raise InputError(f"price: {arr.size} values for hours={hours}; give one price per period "
                         "(or leave hours out).")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InputError(f"price: NaN or inf at period(s) {bad[:5].tolist()}; fill the gap.")
    start: pd.Timestamp | None = None
    if isinstance(index, pd.DatetimeIndex) and index.size == arr.size:
        start = index[0]
        if index.size > 1:
            steps = np.diff(index.asi8)
            if (steps != steps[0]).any() or steps[0] <= 0:
                raise InputError("price: its time index is not evenly spaced and increasing; resample it "
                                 "to periods of one length.")
            step_h = steps[0] / 3.6e12
            if period_hours is None:
                period_hours = float(step_h)
            elif abs(step_h - float(period_hours)) > 1e-9:
                raise InputError(f"price: its time index has {step_h:g}-hour steps but period_hours="
                                 f"{period_hours!r}; drop one or make them agree.")
    return arr, start, float(period_hours if period_hours is not None else 1.0)


class _FeederUnderPrice(TDOPF):
    """:class:`TDOPF` whose substation source costs ``price[t]`` in period ``t``."""

    def __init__(self, td: TDNetwork, price: np.ndarray, **kwargs: Any) -> None:
        self._price = np.asarray(price, dtype=float)
        super().__init__(td, **kwargs)

    def _c1(self) -> np.ndarray:
        return self._price[None, :].copy()


def solve_feeder(feeder_net: Any, price: Any, *, hours: int | None = None, period_hours: float | None = None,
                 name: str = "feeder", scale: float = 1.0, substation_mva: float | None = None,
                 evs: pd.DataFrame | None = None, profiles: Mapping[tuple[str, str], Any] | None = None,
                 vm_min_pu: float | None = None, vm_max_pu: float | None = None, losses: bool = True,
                 demo_profiles: bool = False, **kwargs: Any) -> xr.Dataset:
    """DLMPs of one radial feeder under a given substation price series.

    Parameters
    ----------
    feeder_net : pandapowerNet or FeederArrays
        A radial feeder whose ext_grid bus is the substation (as for
        :meth:`TDNetwork.add_feeder`).
    price : float, sequence, pandas.Series or xarray.DataArray
        Substation price in $/MWh, one value per period (a scalar: the same in every
        period).  The substation buys and sells any amount at this price.  A
        ``DatetimeIndex`` sets the period start times (and ``period_hours`` when not given).
    hours : int, optional
        Number of periods; only with a scalar price (a series sets it by its length).
    period_hours : float, optional
        Length of a period in hours; default the spacing of the price's time index, else 1.
    name : str
        Feeder name; ``dnode`` labels are ``"<name>:<bus>"``.
    scale, substation_mva, evs, profiles, vm_min_pu, vm_max_pu
        As :meth:`TDNetwork.add_feeder` (``profiles`` are the feeder's own).
    losses : bool
        As :class:`TDOPF`: AC loss coefficients iterated to the AC power flow (True) or
        lossless LinDistFlow (False).
    demo_profiles : bool
        False (default): every load and PV keeps its ``p_mw`` in every period unless
        ``profiles`` say otherwise.  True: the shipped 24-hour demo shapes, as in
        :func:`nodalopt.solve` with ``hours > 1``.
    **kwargs
        Other :class:`TDOPF` options (``solver``, ``solver_options``, ``voll``,
        ``loss_max_iter``, ``start``, ...).

    Returns
    -------
    xarray.Dataset
        The T&D result: ``dlmp`` and its components per ``dnode``, ``vm_pu``,
        ``p_substation``; ``lmp`` at the single transmission bus equals ``price``.

    Examples
    --------
    >>> ds = nodalopt.solve_feeder(pandapower.networks.case33bw(), price=100.0)   # doctest: +SKIP
    >>> ds.dlmp.sel(dnode="feeder:17")                                            # doctest: +SKIP
    """
    refused = [k for k in _REFUSED if k in kwargs]
    if refused:
        raise InputError(f"solve_feeder does not take {refused}: the substation is a price, not a network "
                         "with emission data; attach the feeder to a transmission network with "
                         "nodalopt.TDNetwork for carbon studies.")
    arr, start, dt = price_series(price, hours, period_hours)
    if start is not None:
        kwargs.setdefault("start", start)
    td = TDNetwork(substation_network(price=float(arr[0])))
    td.add_feeder(name, feeder_net, at_bus=0, scale=scale, replace=False, substation_mva=substation_mva,
                  evs=evs, profiles=profiles, vm_min_pu=vm_min_pu, vm_max_pu=vm_max_pu)
    model = _FeederUnderPrice(td, arr, hours=arr.size, period_hours=dt, losses=losses,
                              demo_profiles=demo_profiles, **kwargs)
    ds = model.solve()
    ds.attrs["network"] = f"{name} under a given substation price"
    return ds


# ================================================================ command line
def _read_price(text: str) -> Any:
    """``--price``: a number, comma-separated numbers, or a CSV file (first numeric column; a
    ``time`` / ``snapshot`` first column becomes the time index)."""
    p = Path(text)
    if p.suffix.lower() == ".csv" or p.is_file():
        if not p.is_file():
            raise InputError(f"--price {text}: no such file.")
        size = p.stat().st_size
        if size > MAX_PRICE_CSV_BYTES:
            raise InputError(f"--price {text}: {size} bytes, over the {MAX_PRICE_CSV_BYTES}-byte limit.")
        try:
            df = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8")
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"--price {p}: not a readable UTF-8 CSV file ({exc}).") from None
        if df.empty:
            raise InputError(f"--price {p}: no rows.")
        index = None
        if df.shape[1] > 1 and str(df.columns[0]).strip().lower() in ("time", "snapshot", "timestamp", "datetime"):
            try:
                index = pd.DatetimeIndex(pd.to_datetime(df.iloc[:, 0], format="ISO8601"))
            except (ValueError, TypeError):
                raise InputError(f"--price {p}: column '{df.columns[0]}' holds something that is not an "
                                 "ISO 8601 time.") from None
            df = df.iloc[:, 1:]
        col = df.columns[0]
        vals = pd.to_numeric(df[col].str.strip(), errors="coerce").to_numpy(float)
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            r = int(bad[0])
            raise InputError(f"--price {p}, line {r + 2}, column '{col}': {df[col].iloc[r]!r} is not a finite "
                             "number ($/MWh).")
        return pd.Series(vals, index=index) if index is not None else vals
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--price {text!r}: give a number ($/MWh), comma-separated numbers (one per period) "
                         "or a CSV file.") from None
    return vals[0] if len(vals) == 1 else np.asarray(vals)


def _load_feeder(spec: str) -> Any:
    from ..network import load_case
    from .examples import FEEDERS

    if spec in FEEDERS:
        return FEEDERS[spec]()
    if spec.lower().endswith(".json"):
        return load_case(spec)
    raise InputError(f"feeder {spec!r}: give a pandapower .json file or one of {sorted(FEEDERS)}.")


def _cmd_feeder(args: argparse.Namespace) -> int:
    from ..cli import EXIT_OK, check_output_file, summarize, write_result

    for out in (args.output, args.dlmp_csv):  # refused before the solve, never after it
        if out:
            check_output_file(out, [args.feeder])
    ds = solve_feeder(_load_feeder(args.feeder), _read_price(args.price), hours=args.hours,
                      period_hours=args.period_hours, name=args.name, losses=not args.lossless,
                      substation_mva=args.substation_mva, vm_min_pu=args.vm_min, vm_max_pu=args.vm_max,
                      voll=args.voll, solver=args.solver)
    print(summarize(ds))
    if args.output:
        write_result(ds, args.output)
        print(f"written      {args.output}")
    if args.dlmp_csv:
        table = ds.dlmp.to_pandas()
        table.index.name = "time"
        table.to_csv(args.dlmp_csv)
        print(f"written      {args.dlmp_csv}")
    return EXIT_OK


def register_cli(sub: Any) -> None:
    """Add ``nodalopt feeder FEEDER --price P [...]``: one feeder's DLMPs under a substation price."""
    f = sub.add_parser("feeder", help="DLMPs of one feeder under a given substation price",
                       description="DLMPs of one radial feeder under a given substation price series: the "
                                   "substation buys and sells any amount at that price.")
    f.add_argument("feeder", help="feeder: a pandapower .json file or case33bw, case33bw_der, cigre_mv")
    f.add_argument("--price", required=True,
                   help="$/MWh: a number, comma-separated numbers (one per period) or a CSV file (first "
                        "numeric column; an ISO 8601 'time' first column sets the period start times)")
    f.add_argument("--hours", type=int, default=None, help="periods, with a single --price (default 1)")
    f.add_argument("--period-hours", type=float, default=None,
                   help="length of a period in hours (default: the CSV's time step, else 1)")
    f.add_argument("--name", default="feeder", help="feeder name; dnode labels are NAME:BUS")
    f.add_argument("--lossless", action="store_true", help="lossless LinDistFlow (default: AC loss terms)")
    f.add_argument("--substation-mva", type=float, default=None, help="substation apparent-power limit")
    f.add_argument("--vm-min", type=float, default=None, help="lower voltage limit for every bus, pu")
    f.add_argument("--vm-max", type=float, default=None, help="upper voltage limit for every bus, pu")
    f.add_argument("--voll", type=float, default=None, help="value of lost load, $/MWh (allows shedding)")
    f.add_argument("--solver", default="CLARABEL", help="any solver cvxpy has installed")
    f.add_argument("-o", "--output", default=None, help="write the result Dataset to this netCDF file")
    f.add_argument("--dlmp-csv", default=None, metavar="PATH",
                   help="write the DLMPs (time x dnode, $/MWh) to this CSV file")
    f.set_defaults(func=_cmd_feeder)


__all__ = ["solve_feeder", "substation_network", "price_series", "register_cli"]
