"""Network front-ends: everything becomes a :class:`NetworkArrays`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from .arrays import NetworkArrays
from .examples import EXAMPLES
from .matpower import MatpowerCase, from_matpower, read_matpower
from .pandapower import from_pandapower

__all__ = ["NetworkArrays", "MatpowerCase", "compile_network", "load_case", "from_pandapower",
           "from_matpower", "read_matpower", "pglib_dir"]

MAX_JSON_BYTES = 200 * 1024 * 1024
_JSON_MODULES = ("pandapower", "pandas", "numpy", "geojson", "shapely", "builtins", "networkx")


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
    """pandapower JSON, refusing files that would instantiate classes outside known libraries."""
    import pandapower as pp

    if path.stat().st_size > MAX_JSON_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes, over the {MAX_JSON_BYTES}-byte limit.")
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from exc
    stack = [doc]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            mod = o.get("_module")
            if mod is not None and str(mod).split(".")[0] not in _JSON_MODULES:
                raise InputError(f"{path}: refuses to load object of module {mod!r} (only "
                                 f"{_JSON_MODULES} are allowed in a pandapower JSON file).")
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return pp.from_json_string(text)


def load_case(name: str | os.PathLike[str]) -> Any:
    """Load a network.

    Parameters
    ----------
    name : str or path
        A built-in pandapower case (``"case9"``, ``"case118"``, ``"case1354pegase"``, ...),
        a nodalopt example (``"case118_200mva"``: case118 with congestion),
        a PGLib case name (``"pglib_opf_case5_pjm"``, looked up with :func:`pglib_dir`),
        a MATPOWER ``.m`` file, or a pandapower ``.json`` file.

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
        if not p.is_file():
            raise InputError(f"{p}: no such file.")
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
