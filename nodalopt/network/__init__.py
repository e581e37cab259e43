"""Network front-ends: everything becomes a :class:`NetworkArrays`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from .arrays import NetworkArrays
from .examples import EXAMPLES
from .matpower import MatpowerCase, from_matpower, read_matpower
from .pandapower import from_pandapower
from .pp_json import MAX_JSON_BYTES as MAX_JSON_BYTES  # the limit, importable here as before
from .pp_json import read_pandapower_json

__all__ = ["NetworkArrays", "MatpowerCase", "compile_network", "load_case", "from_pandapower",
           "from_matpower", "read_matpower", "pglib_dir"]


def pglib_dir() -> Path | None:
    """The PGLib folder: ``$NODALOPT_PGLIB`` or ``../shared/pglib`` above the working directory."""
    env = os.environ.get("NODALOPT_PGLIB")
    cands = [Path(env)] if env else []
    here = Path.cwd().resolve()
    cands += [p / "shared" / "pglib" for p in (here, *here.parents)]
    cands += [Path(__file__).resolve().parents[3] / "shared" / "pglib"]
    for c in cands:
        if c.is_dir() and any(c.glob("pglib_opf_*.m")):
            return c
    return None


def _safe_json(path: Path) -> Any:
    """A pandapower JSON file, read by :mod:`nodalopt.network.pp_json` (nothing in it is imported or run)."""
    return read_pandapower_json(path)


def load_case(name: str | os.PathLike[str]) -> Any:
    """Load a network.

    Parameters
    ----------
    name : str or path
        A built-in pandapower case (``"case9"``, ``"case118"``, ``"case1354pegase"``, ...),
        a nodalopt example (``"case118_200mva"``: case118 with congestion),
        a PGLib case name (``"pglib_opf_case5_pjm"``, looked up with :func:`pglib_dir`),
        a MATPOWER ``.m`` file, or a pandapower ``.json`` file (read by
        :func:`~nodalopt.network.pp_json.read_pandapower_json`: only the tables and plain
        values :func:`pandapower.to_json` writes; nothing named in the file is imported).

    Returns
    -------
    pandapowerNet or MatpowerCase
        ``.m`` files are returned as a :class:`MatpowerCase` (exact MATPOWER
        semantics; ``.to_pandapower()`` converts).
    """
    s = str(name)
    p = Path(s)
    if p.suffix.lower() == ".m":
        return read_matpower(p)
    if p.suffix.lower() == ".json":
        return _safe_json(p)
    if s.startswith("pglib_opf_"):
        d = pglib_dir()
        if d is None or not (d / f"{s}.m").is_file():
            raise InputError(f"PGLib case {s!r} not found; set NODALOPT_PGLIB to the folder of the .m files.")
        return read_matpower(d / f"{s}.m")
    if s in EXAMPLES:
        return EXAMPLES[s]()
    import pandapower.networks as pn

    fn = getattr(pn, s, None)
    if s.startswith("_") or not callable(fn) or not s.startswith(("case", "GBnetwork", "iceland", "GBreduced")):
        raise InputError(f"unknown case {s!r}: give a pandapower case name (e.g. 'case118'), a PGLib "
                         "name, or a path to a .m or .json file.")
    net = fn()
    net.name = s
    return net


def compile_network(network: Any, dc_model: str = "pandapower", **pandapower_options: Any) -> NetworkArrays:
    """Anything :func:`nodalopt.solve` accepts -> :class:`NetworkArrays`.

    ``pandapower_options`` (``strict``, ``curtail_sgen``, ``storage``) go to
    :func:`from_pandapower` when ``network`` is a pandapower net (or a pandapower JSON file).
    """
    if isinstance(network, NetworkArrays):
        if dc_model != "pandapower" and network.meta.get("dc_model") != dc_model:
            raise InputError("NetworkArrays are already compiled; pass dc_model when compiling instead.")
        return network
    if isinstance(network, str | os.PathLike):
        network = load_case(network)
    if isinstance(network, MatpowerCase):
        return from_matpower(network, dc_model=dc_model)
    if hasattr(network, "bus") and hasattr(network, "line"):
        return from_pandapower(network, dc_model=dc_model, **pandapower_options)
    raise InputError(f"cannot compile a {type(network).__name__}: pass a pandapower net, a "
                     "MatpowerCase, NetworkArrays, a case name or a file path.")
