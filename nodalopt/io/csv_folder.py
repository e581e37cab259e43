"""CSV network folders in the PyPSA layout -> :class:`NetworkArrays` + profiles.

A folder holds one CSV file per component (``buses.csv``, ``lines.csv``,
``transformers.csv``, ``generators.csv``, ``loads.csv``, ``storage_units.csv``,
``carriers.csv``), ``snapshots.csv`` and time series ``<component>-<attribute>.csv``
(``loads-p_set.csv``, ``generators-p_max_pu.csv``, ``generators-p_min_pu.csv``).
This is what ``pypsa.Network.export_to_csv_folder`` writes; PyPSA is *not*
imported.  Semantics follow PyPSA's linear optimal power flow; the columns read
and their units are documented in ``docs/csv_format.md``.

Files are treated as hostile: each file's size is checked before it is read,
nothing is evaluated, every cell is parsed as text by the :mod:`csv` module and
converted explicitly, and every error names the file, the line (the header is
line 1) and the column.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import os
import re
import stat
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..network import validate as V
from ..network.arrays import DISPATCHABLE, RENEWABLE, NetworkArrays

#: reads the table a path names (:func:`read_table`, or an in-memory source)
Loader = Callable[[Path], "Table"]
#: largest CSV file read (bytes); checked before the file is opened
MAX_FILE_BYTES = 64 * 1024 * 1024
#: largest sum of the CSV files of one folder (bytes)
MAX_FOLDER_BYTES = 512 * 1024 * 1024
#: default MVA base of the compiled per-unit susceptances
BASE_MVA = 100.0

_NUM_RE = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_INF_RE = r"[+-]?(?:inf|Inf|INF|infinity|Infinity)"
_TRUE = {"true", "1", "yes", "t", "1.0"}
_FALSE = {"false", "0", "no", "f", "0.0", ""}

#: component files that are read
COMPONENTS = ("buses", "lines", "transformers", "generators", "loads", "storage_units", "carriers", "links")
#: time series that are read, per component
SERIES = {("loads", "p_set"), ("generators", "p_max_pu"), ("generators", "p_min_pu")}
#: time-varying *inputs* that would change the optimum but are not modelled: refused
REFUSED_SERIES = {
    "generators": {"marginal_cost", "marginal_cost_quadratic", "efficiency", "p_set", "stand_by_cost",
                   "ramp_limit_up", "ramp_limit_down"},
    "lines": {"s_max_pu"},
    "transformers": {"s_max_pu"},
    "storage_units": {"p_min_pu", "p_max_pu", "p_set", "p_dispatch_set", "p_store_set", "inflow",
                      "state_of_charge_set", "efficiency_store", "efficiency_dispatch", "standing_loss",
                      "marginal_cost", "marginal_cost_quadratic", "marginal_cost_storage", "spill_cost"},
    "loads": set(),
    "buses": set(),
    "links": {"efficiency", "p_set", "p_min_pu", "p_max_pu", "marginal_cost", "marginal_cost_quadratic",
              "stand_by_cost", "ramp_limit_up", "ramp_limit_down"},
}
#: components that change the optimum but are not modelled: refused when the file has rows
UNSUPPORTED_COMPONENTS = ("stores", "shunt_impedances", "global_constraints", "processes",
                          "investment_periods")


@functools.lru_cache(maxsize=1)
def line_types() -> pd.DataFrame:
    """PyPSA's standard line types (``x_per_length``, ``r_per_length`` in ohm/km ...), by name.

    A copy of ``pypsa/data/standard_types/line_types.csv`` of PyPSA 1.2.4 (MIT licence; the data
    come from pandapower, BSD licence) shipped as ``nodalopt/data/pypsa_line_types.csv``, so
    that CSV folders are read without PyPSA.
    """
    path = Path(__file__).resolve().parent.parent / "data" / "pypsa_line_types.csv"
    return pd.read_csv(path, index_col="name")


def _extendable_message(attr: str) -> str:
    return (f"capacity expansion is not modelled; fix the capacity: set {attr} (e.g. to {attr}_opt of a "
            f"PyPSA optimize()) and {attr}_extendable=False.")


# ============================================================== low-level CSV
def _where(path: Path, line: int, column: str | int | None) -> str:
    if column is None:
        return f"{path}, line {line}"
    if isinstance(column, int):
        return f"{path}, line {line}, column {column}"
    return f"{path}, line {line}, column {column!r}"


def _fail(path: Path, line: int, column: str | int | None, msg: str) -> InputError:
    return InputError(f"{_where(path, line, column)}: {msg}")


@dataclass(frozen=True)
class Table:
    """One CSV file as text: header, rows and the file line where each row starts."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: np.ndarray  # int64, line number (header = 1) of each row

    def __len__(self) -> int:
        return len(self.rows)

    def has(self, col: str) -> bool:
        return col in self.header

    def raw(self, col: str | int) -> np.ndarray:
        j = col if isinstance(col, int) else self.header.index(col)
        return np.array([r[j] for r in self.rows], dtype=object)

    def col_label(self, j: int) -> str | int:
        """How to name column ``j`` in a message (its header, or its 1-based position if unnamed)."""
        return self.header[j] if self.header[j] else j + 1

    def require(self, *cols: str) -> None:
        for c in cols:
            if c not in self.header:
                raise _fail(self.path, 1, c, f"required column is missing (the header has "
                                             f"{self.header[:12]}); add it.")

    def take(self, mask: np.ndarray) -> Table:
        idx = np.flatnonzero(mask)
        return Table(self.path, self.header, [self.rows[i] for i in idx], self.lines[idx])


def open_regular(path: Path, what: str = "CSV file") -> int:
    """Open ``path`` read-only without following a final symlink and without blocking; refuse non-regular files.

    ``O_NONBLOCK`` makes opening a FIFO return at once (instead of waiting for a writer);
    ``fstat`` on the open descriptor then refuses anything that is not a regular file, so
    the check and the read concern the same file.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if path.is_symlink():
            raise InputError(f"{path}: is a symbolic link; refusing to follow it (copy the file instead).") from None
        raise InputError(f"{path}: cannot open the {what} ({exc.strerror or exc}).") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InputError(f"{path}: is {_kind_of(st.st_mode)}, not a regular file; a {what} must be a plain "
                         "file (refusing to read it).")
    if getattr(os, "O_NONBLOCK", 0):  # regular file: back to ordinary blocking reads
        os.set_blocking(fd, True)
    return fd


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    limit = MAX_FILE_BYTES if limit is None else limit
    if path.is_symlink():
        raise InputError(f"{path}: is a symbolic link; refusing to follow it (copy the file instead).")
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise InputError(f"{path}: {size} bytes, over the {limit}-byte limit for one CSV file "
                             "(raise nodalopt.io.csv_folder.MAX_FILE_BYTES if the file is trusted).")
        data = fh.read(limit + 1)
    if len(data) > limit:  # grew after stat
        raise InputError(f"{path}: over the {limit}-byte limit for one CSV file.")
    return data


def _decode(path: Path, data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line_no = data.count(b"\n", 0, exc.start) + 1
        header = data.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
        prefix = data[line_start:exc.start].decode("utf-8", "replace")
        try:
            names = next(csv.reader([header]))
            j = len(next(csv.reader([prefix + "x"]))) - 1
        except (csv.Error, StopIteration):
            names, j = [], 0
        col: str | int = (names[j] or j + 1) if j < len(names) else j + 1
        raise _fail(path, line_no, col, f"byte 0x{data[exc.start]:02x} at position "
                                        f"{exc.start - line_start + 1} of the line is not valid UTF-8; "
                                        "save the file as UTF-8.") from None


def read_table(path: Path, id_column: bool = True) -> Table:
    """Parse one CSV file (``,`` separated, UTF-8, optional BOM) into a :class:`Table`."""
    return parse_table(path, _decode(path, _read_bytes(path)))


def parse_table(path: Path, text: str) -> Table:
    """Parse CSV text (what :func:`read_table` read from ``path``; ``path`` names it in messages)."""
    first = text.split("\n", 1)[0].rstrip("\r")
    if not first.strip():
        raise _fail(path, 1, 1, "the header line is empty; the first line must name the columns.")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise _fail(path, 1, 1, f"malformed header ({exc}).") from None
    if len(header) == 1:
        for sep in (";", "\t", "|"):
            if sep in header[0]:
                raise _fail(path, 1, 1, f"the header {header[0][:60]!r} is separated by {sep!r}; "
                                        "CSV network folders use ',' as the delimiter (PyPSA layout).")
    seen: dict[str, int] = {}
    for j, h in enumerate(header):
        if h in seen and h:
            raise _fail(path, 1, h, f"duplicate column name (also column {seen[h] + 1}).")
        seen[h] = j
    rows: list[list[str]] = []
    lines: list[int] = []
    start = reader.line_num + 1
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                start = reader.line_num + 1
                continue
            if len(row) != len(header):
                j = min(len(row), len(header))
                col = header[j] if j < len(header) else j + 1
                hint = " (is the delimiter ';'?)" if len(row) == 1 and ";" in row[0] else ""
                raise _fail(path, start, col or j + 1, f"{len(row)} fields for {len(header)} columns in "
                                                       f"the header{hint}.")
            rows.append(row)
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise _fail(path, reader.line_num, None, f"malformed CSV ({exc}).") from None
    return Table(path, header, rows, np.asarray(lines, dtype=np.int64))


def _numbers(t: Table, col: str, default: float | None, allow_inf: bool = False,
             values: np.ndarray | None = None) -> np.ndarray:
    """Column -> float array; empty cells take ``default`` (``None``: an empty cell is an error)."""
    if not t.has(col) and values is None:
        if default is None:
            t.require(col)
        return np.full(len(t), float(default if default is not None else np.nan))
    raw = t.raw(col) if values is None else values
    s = pd.Series(raw, dtype=object).astype(str).str.strip()
    empty = (s == "").to_numpy()
    pat = f"(?:{_NUM_RE}|{_INF_RE})" if allow_inf else _NUM_RE
    ok = s.str.fullmatch(pat).to_numpy(dtype=bool) | empty
    if default is None and empty.any():
        i = int(np.argmax(empty))
        raise _fail(t.path, int(t.lines[i]), col, "empty value; give a number.")
    if not ok.all():
        i = int(np.argmax(~ok))
        v = str(raw[i])
        if re.fullmatch(r"[+-]?nan", v.strip(), re.IGNORECASE):
            why = "NaN is not allowed; give a number (or leave the cell empty for the default)."
        elif re.fullmatch(_INF_RE, v.strip()):
            why = "inf is not allowed in this column; give a finite number."
        else:
            why = f"{v[:40]!r} is not a number."
        raise _fail(t.path, int(t.lines[i]), col, why)
    out = np.full(len(s), np.nan if default is None else float(default))
    full = ~empty
    out[full] = s[full].str.replace("infinity", "inf", case=False).astype(float).to_numpy()
    return out


def _bools(t: Table, col: str, default: bool) -> np.ndarray:
    if not t.has(col):
        return np.full(len(t), default)
    s = pd.Series(t.raw(col), dtype=object).astype(str).str.strip().str.lower()
    out = np.full(len(s), default)
    is_t, is_f = s.isin(_TRUE).to_numpy(), s.isin(_FALSE).to_numpy() & (s != "").to_numpy()
    bad = ~(is_t | is_f | (s == "").to_numpy())
    if bad.any():
        i = int(np.argmax(bad))
        raise _fail(t.path, int(t.lines[i]), col, f"{t.raw(col)[i]!r} is not a boolean (True/False).")
    out[is_t] = True
    out[is_f] = False
    return out


def _strings(t: Table, col: str, default: str = "") -> np.ndarray:
    if not t.has(col):
        return np.full(len(t), default, dtype=object)
    return t.raw(col)


def _first_bad(t: Table, mask: np.ndarray, col: str, msg: str) -> None:
    if np.any(mask):
        i = int(np.argmax(mask))
        raise _fail(t.path, int(t.lines[i]), col, msg.format(i=i))


def _ids(t: Table) -> np.ndarray:
    """The element names (column ``name``, else the first column); unique and non-empty."""
    j = t.header.index("name") if "name" in t.header else 0
    ids = t.raw(j)
    label = t.col_label(j)
    first: dict[str, int] = {}
    for i, v in enumerate(ids):
        if not str(v).strip():
            raise _fail(t.path, int(t.lines[i]), label, "empty element name.")
        if v in first:
            raise _fail(t.path, int(t.lines[i]), label, f"duplicate id {v!r} (first defined on line "
                                                        f"{int(t.lines[first[v]])}); ids must be unique.")
        first[v] = i
    return ids


def _bus_refs(t: Table, col: str, bus_pos: Mapping[str, int], buses_file: Path) -> np.ndarray:
    t.require(col)
    ref = t.raw(col)
    out = np.empty(len(ref), np.int64)
    for i, b in enumerate(ref):
        p = bus_pos.get(b)
        if p is None:
            raise _fail(t.path, int(t.lines[i]), col, f"unknown bus {b!r} (not defined in "
                                                      f"{buses_file.name}); use an existing bus name.")
        out[i] = p
    return out


def _refuse_nondefault(t: Table, col: str, default: float, why: str) -> None:
    if t.has(col):
        v = _numbers(t, col, default, allow_inf=True)
        _first_bad(t, v != default, col, f"a value other than {default:g} is not supported: {why}")


def _refuse_true(t: Table, col: str, why: str) -> None:
    if t.has(col):
        _first_bad(t, _bools(t, col, False), col, f"True is not supported: {why}")


def _p_nom(t: Table, filled: list[str]) -> np.ndarray:
    """``p_nom`` (MW): an empty cell is an error; a column left out takes PyPSA's default 0 (reported)."""
    if t.has("p_nom"):
        return _numbers(t, "p_nom", None)
    filled.append(f"{t.path.name} column 'p_nom' left out: PyPSA's default p_nom = 0 MW applies")
    return np.zeros(len(t))


def _rated_range(t: Table, filled: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``p_nom`` (MW, >= 0) and ``p_min_pu`` <= ``p_max_pu`` (PyPSA defaults 0 and 1) of generators and links."""
    p_nom = _p_nom(t, filled)
    _first_bad(t, p_nom < 0, "p_nom", "negative rating; p_nom must be >= 0 MW.")
    lo = _numbers(t, "p_min_pu", 0.0)
    hi = _numbers(t, "p_max_pu", 1.0)
    _first_bad(t, lo > hi, "p_min_pu", "p_min_pu > p_max_pu.")
    return p_nom, lo, hi


def _refuse_set(t: Table, col: str, why: str) -> None:
    if t.has(col):
        v = _numbers(t, col, np.nan, allow_inf=True)
        _first_bad(t, ~np.isnan(v), col, f"a value is not supported: {why}")


# ============================================================== the case
@dataclass(frozen=True, eq=False)
class CsvCase:
    """A CSV network folder: compiled arrays, per-snapshot profiles and the snapshot axis.

    Attributes
    ----------
    arrays : NetworkArrays
        The network (profiles not applied).
    profiles : dict
        ``{("load", "p_mw"): DataFrame, ("gen", "max_p_mw"): ..., ("gen", "min_p_mw"): ...}``
        in MW, rows = snapshots, columns = element names (as in the CSV files);
        ready for :meth:`nodalopt.DCOPF.solve`.
    snapshots : pandas.Index
        Snapshot labels (a DatetimeIndex when they parse as times).
    weightings : pandas.DataFrame
        ``objective``, ``stores``, ``generators`` per snapshot (hours).
    """

    path: Path
    arrays: NetworkArrays
    profiles: dict[tuple[str, str], pd.DataFrame]
    snapshots: pd.Index
    weightings: pd.DataFrame
    bus_names: np.ndarray = field(default_factory=lambda: np.zeros(0, object))

    @property
    def period_hours(self) -> float:
        return float(self.weightings["objective"].iloc[0]) if len(self.weightings) else 1.0

    @property
    def n_snapshots(self) -> int:
        return len(self.snapshots)

    def solve(self, **kwargs: Any) -> Any:
        """Solve this case; keyword arguments as :func:`solve_csv_folder`."""
        return solve_case(self, **kwargs)


#: other files PyPSA's ``export_to_csv_folder`` writes that carry nothing the DC-OPF uses: accepted unread
#: (``sub_networks`` is derived topology, ``shapes`` geometry, the ``*_types`` standard types are refused
#: where an element uses one; ``crs.json`` / ``meta.json`` are coordinates and user metadata)
PYPSA_IGNORED = ("sub_networks.csv", "shapes.csv", "line_types.csv", "transformer_types.csv", "crs.json",
                 "meta.json")
#: PyPSA's time-varying attributes per component (``<component>-<attribute>.csv``), inputs and results,
#: as listed by ``pypsa.Network().components[...].defaults.varying`` (PyPSA 1.2).  Those in
#: :data:`SERIES` are read, those in :data:`REFUSED_SERIES` refused; the others (reactive power,
#: voltage set points, results of an earlier optimisation) do not enter a DC-OPF and are accepted unread.
PYPSA_SERIES: dict[str, frozenset[str]] = {k: frozenset(v.split()) for k, v in {
    "buses": "v_mag_pu_set p q v_mag_pu v_ang marginal_price",
    "generators": "p_min_pu p_max_pu p_set q_set marginal_cost marginal_cost_quadratic efficiency stand_by_cost "
                  "ramp_limit_up ramp_limit_down p q status start_up shut_down mu_upper mu_lower mu_p_set "
                  "mu_ramp_limit_up mu_ramp_limit_down",
    "loads": "p_set q_set p q",
    "lines": "s_max_pu p0 q0 p1 q1 mu_lower mu_upper",
    "transformers": "s_max_pu p0 q0 p1 q1 mu_lower mu_upper",
    "storage_units": "p_min_pu p_max_pu p_set q_set p_dispatch_set p_store_set spill_cost marginal_cost "
                     "marginal_cost_quadratic marginal_cost_storage state_of_charge_set efficiency_store "
                     "efficiency_dispatch standing_loss inflow p p_dispatch p_store q state_of_charge spill "
                     "mu_upper mu_lower mu_state_of_charge_set mu_energy_balance",
    "stores": "e_min_pu e_max_pu p_set q_set e_set marginal_cost marginal_cost_quadratic marginal_cost_storage "
              "standing_loss p q e mu_upper mu_lower mu_energy_balance",
    "links": "efficiency p_set p_min_pu p_max_pu marginal_cost marginal_cost_quadratic stand_by_cost "
             "ramp_limit_up ramp_limit_down p p0 p1 status start_up shut_down mu_lower mu_upper mu_p_set "
             "mu_ramp_limit_up mu_ramp_limit_down",
    "shunt_impedances": "p q",
}.items()}
#: names and suffixes of files that are clearly not network data: listed in a warning, not read
_NOT_DATA_SUFFIXES = (".md", ".txt", ".rst", ".pdf", ".png", ".jpg", ".jpeg", ".svg", ".html", ".ipynb")
_NOT_DATA_STEMS = ("readme", "license", "licence", "notice", "changelog", "authors")


def known_file_names() -> list[str]:
    """Every file name a CSV network folder may hold (read, refused by content, or accepted unread)."""
    names = {f"{c}.csv" for c in (*COMPONENTS, *UNSUPPORTED_COMPONENTS, "network", "snapshots",
                                  "investment_periods")}
    names.update(PYPSA_IGNORED)
    names.update(f"{c}-{a}.csv" for c, attrs in PYPSA_SERIES.items() for a in attrs)
    return sorted(names)


def _not_data(name: str) -> bool:
    low = name.lower()
    return (name.startswith(".") or low.endswith(_NOT_DATA_SUFFIXES)
            or low.split(".", 1)[0] in _NOT_DATA_STEMS)


def _closest(name: str, known: list[str]) -> str:
    low = name.strip().lower()
    exact = [k for k in known if k == low]
    if exact:
        return f"; did you mean {exact[0]!r} (names are case- and space-sensitive)?"
    close = difflib.get_close_matches(low, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _files(folder: Path) -> dict[str, Path]:
    """CSV files directly in ``folder`` (by name), with the folder size limit enforced.

    Every entry is accounted for: a name nodalopt does not know (``Generators-p_max_pu.csv``,
    a trailing space, ``buses.csv.bak``) is an :class:`InputError` naming the file and the
    closest known name; anything that is not a regular file (a FIFO, a socket, a device, a
    folder named like a data file) is refused; files that are clearly not network data
    (README, ``.md``/``.txt``, dotfiles) and other sub-folders are listed in one warning.
    Known files PyPSA writes that the DC-OPF does not use (:data:`PYPSA_IGNORED`, reactive
    and result time series of :data:`PYPSA_SERIES`) are accepted unread.
    """
    out: dict[str, Path] = {}
    total = 0
    root = folder.resolve()
    known = known_file_names()
    known_set = set(known)
    unread: list[str] = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        p = Path(entry.path)
        name = entry.name
        if entry.is_symlink():
            target = p.resolve()
            if root not in target.parents:
                raise InputError(f"{p}: symbolic link to {target}, outside the case folder; refusing it.")
        try:
            mode = entry.stat(follow_symlinks=True).st_mode
        except OSError as exc:
            raise InputError(f"{p}: cannot inspect it ({exc.strerror or exc}); remove it from the case "
                             "folder.") from None
        regular = stat.S_ISREG(mode)
        if name in known_set:
            if not regular:
                raise InputError(f"{p}: is {_kind_of(mode)}, not a regular file; {name} must be a plain file.")
            if name.endswith(".csv"):
                total += entry.stat(follow_symlinks=True).st_size
                out[name] = p
            continue
        if stat.S_ISDIR(mode):
            if name.startswith(".") or not (name.lower().endswith((".csv", ".json")) or _closest(name, known)):
                unread.append(name + "/")
                continue
            raise InputError(f"{p}: is a folder, not a file{_closest(name, known) or '.'} A CSV network "
                             "folder holds its data in plain files.")
        if not regular:
            raise InputError(f"{p}: is {_kind_of(mode)}, not a regular file; refusing it (remove it from the "
                             "case folder).")
        if _not_data(name):
            unread.append(name)
            continue
        hint = _closest(name, known) or "; the names read are listed in docs/csv_format.md."
        raise InputError(f"{p}: file {name!r} is not part of a CSV network folder and would be ignored"
                         f"{hint} Rename or remove it.")
    if unread:
        warnings.warn(f"{folder}: not network data, not read: {', '.join(unread[:20])}"
                      + (f" and {len(unread) - 20} more" if len(unread) > 20 else ""), UserWarning, stacklevel=3)
    if total > MAX_FOLDER_BYTES:
        raise InputError(f"{folder}: its CSV files total {total} bytes, over the {MAX_FOLDER_BYTES}-byte "
                         "limit (raise nodalopt.io.csv_folder.MAX_FOLDER_BYTES if the folder is trusted).")
    return out


def _read_snapshots(path: Path, load: Loader = read_table) -> tuple[list[str], pd.Index, pd.DataFrame, Table]:
    """keys (what time series rows are indexed by), labels and weightings."""
    t = load(path)
    for c in ("period", "timestep"):
        if t.has(c):
            raise _fail(path, 1, c, "multi-period (investment period) snapshots are not supported; "
                                    "export a single-period network.")
    if not len(t):
        raise _fail(path, 2, None, "no snapshots; give one row per snapshot.")
    key_col = 0
    label_col = t.header.index("snapshot") if "snapshot" in t.header else (
        t.header.index("name") if "name" in t.header else 0)
    keys = [str(k) for k in t.raw(key_col)]
    labels = [str(k) for k in t.raw(label_col)]
    for vals, j in ((keys, key_col), (labels, label_col)):
        first: dict[str, int] = {}
        for i, k in enumerate(vals):
            if k in first:
                raise _fail(path, int(t.lines[i]), t.col_label(j),
                            f"duplicate snapshot {k!r} (first on line {int(t.lines[first[k]])}).")
            first[k] = i
    w = {}
    for c in ("objective", "stores", "generators"):
        v = _numbers(t, c, 1.0)
        _first_bad(t, v <= 0, c, "snapshot weightings must be > 0 hours.")
        w[c] = v
    weights = pd.DataFrame(w)
    for c in ("stores", "generators"):
        _first_bad(t, weights[c].to_numpy() != weights["objective"].to_numpy(), c,
                   f"'{c}' weighting differs from 'objective'; only equal weightings are supported.")
    obj = weights["objective"].to_numpy()
    _first_bad(t, obj != obj[0], "objective", f"snapshot weighting differs from the first snapshot "
                                              f"({obj[0]:g} h); only uniform weightings are supported.")
    try:
        index: pd.Index = pd.DatetimeIndex(pd.to_datetime(labels, format="ISO8601"))
    except (ValueError, TypeError):
        index = pd.Index(labels)
    weights.index = index
    return keys, index, weights, t


def _read_series(path: Path, ids: np.ndarray, keys: list[str], labels: pd.Index,
                 key_label: str, skip: set[str] | frozenset[str] = frozenset(),
                 load: Loader = read_table) -> pd.DataFrame:
    """A ``<component>-<attribute>.csv`` time series -> DataFrame (snapshot x element).

    Columns named in ``skip`` (inactive elements) are dropped unread.
    """
    t = load(path)
    known = set(map(str, ids))
    for j, h in enumerate(t.header[1:], start=1):
        if h not in known and h not in skip:
            raise _fail(path, 1, t.col_label(j), f"unknown element {h!r}: not defined (or not active) "
                                                 "in the component file.")
    lab = [str(x) for x in labels.astype(str)] if not isinstance(labels, pd.DatetimeIndex) else None
    first = t.raw(0) if len(t) else np.zeros(0, object)
    T = len(keys)
    if len(t) != T:
        ln = int(t.lines[T]) if len(t) > T else (int(t.lines[-1]) + 1 if len(t) else 2)
        raise _fail(path, ln, t.col_label(0), f"{len(t)} rows for the {T} snapshots of {key_label}; give "
                                              "exactly one row per snapshot, in order.")
    for i, k in enumerate(first):
        if str(k) != keys[i] and (lab is None or str(k) != lab[i]) and not _same_time(str(k), labels, i):
            raise _fail(path, int(t.lines[i]), t.col_label(0),
                        f"snapshot {str(k)[:40]!r} where {key_label} has {keys[i]!r} (row {i + 1}); "
                        "rows must follow snapshots.csv.")
    cols = [h for h in t.header[1:] if h not in skip]
    j_of = [j for j, h in enumerate(t.header) if j > 0 and h not in skip]
    if not cols or not len(t):
        return pd.DataFrame(np.zeros((len(t), len(cols))), index=labels, columns=cols)
    # every cell at once (column-major, so the first bad cell is found in the order of the columns)
    cells = pd.Series(np.array(t.rows, dtype=object)[:, j_of].T.ravel(), dtype=object).str.strip()
    ok = cells.str.fullmatch(_NUM_RE).to_numpy(dtype=bool)
    if not ok.all():  # the per-column parser words the error (file, line, column, why)
        k = int(np.argmax(~ok))
        _numbers(t, cols[k // len(t)], None)
        raise _fail(t.path, int(t.lines[k % len(t)]), cols[k // len(t)], "not a number.")
    values = cells.astype(float).to_numpy().reshape(len(cols), len(t)).T
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
        raise _fail(t.path, int(t.lines[i]), cols[j], "inf is not allowed in a time series.")
    return pd.DataFrame(values, index=labels, columns=cols)


def _same_time(k: str, labels: pd.Index, i: int) -> bool:
    if not isinstance(labels, pd.DatetimeIndex):
        return False
    try:
        return pd.Timestamp(k) == labels[i]
    except (ValueError, TypeError):
        return False


def _active(t: Table) -> Table:
    return t.take(_bools(t, "active", True)) if t.has("active") else t


def read_csv_folder(path: str | os.PathLike[str], base_mva: float = BASE_MVA,
                    dc_model: str = "pypsa") -> CsvCase:
    """Read a CSV network folder (PyPSA layout) into a :class:`CsvCase`.

    Parameters
    ----------
    path : str or path
        The folder holding ``buses.csv`` etc.
    base_mva : float
        MVA base of the compiled per-unit susceptances (results do not depend on it).
    dc_model : {"pypsa", "pandapower", "pglib"}
        ``"pypsa"`` (= ``"pandapower"``): susceptance ``1 / (x * tap_ratio)`` as
        PyPSA's linear power flow; ``"pglib"``: ``x / (r^2 + x^2)`` (no taps).

    Raises
    ------
    InputError
        Naming file, line (header = line 1) and column of the first problem.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; give the folder that holds buses.csv.")
    files = _files(folder)
    return read_tables(folder, files, read_table, base_mva=base_mva, dc_model=dc_model,
                       name=folder.resolve().name)


def read_tables(folder: Path, files: Mapping[str, Path], load: Loader, *, base_mva: float = BASE_MVA,
                dc_model: str = "pypsa", name: str = "") -> CsvCase:
    """The tables of a CSV network (``files``: file name -> path, ``load``: path -> :class:`Table`)
    into a :class:`CsvCase`; what :func:`read_csv_folder` does after finding the files, and what
    :mod:`nodalopt.network.pypsa_net` does with tables written from a ``pypsa.Network``."""
    if dc_model not in ("pypsa", "pandapower", "pglib", "matpower"):
        raise InputError(f"dc_model={dc_model!r} is not one of 'pypsa', 'pandapower', 'pglib'.")
    if not (np.isfinite(base_mva) and base_mva > 0):
        raise InputError(f"base_mva must be a positive number, got {base_mva!r}.")
    if "buses.csv" not in files:
        raise InputError(f"{folder}: no buses.csv; a CSV network folder needs at least buses.csv "
                         "(see docs/csv_format.md).")
    for comp in UNSUPPORTED_COMPONENTS:
        if f"{comp}.csv" in files:
            t = load(files[f"{comp}.csv"])
            if len(_active(t)):
                raise _fail(t.path, int(t.lines[0]), None, f"{comp} are not modelled by the DC-OPF yet; "
                                                           "remove the file or its rows.")
    net_name = name
    if "network.csv" in files:
        nt = load(files["network.csv"])
        if len(nt) and nt.has("_multi_invest") and _numbers(nt, "_multi_invest", 0.0)[0] != 0:
            raise _fail(nt.path, int(nt.lines[0]), "_multi_invest", "multi-investment-period networks "
                                                                    "are not supported.")
        if len(nt) and nt.has("name") and nt.raw("name")[0].strip() and nt.raw("name")[0] != "Unnamed Network":
            net_name = str(nt.raw("name")[0])[:200]

    inactive: dict[str, set[str]] = {}

    def table(comp: str) -> Table | None:
        p = files.get(f"{comp}.csv")
        if p is None:
            return None
        full = load(p)
        act = _active(full)
        if len(act) < len(full):
            inactive[comp] = set(map(str, _ids(full))) - set(map(str, _ids(act)))
        return act

    # ----------------------------------------------------------------- buses
    bt = load(files["buses.csv"])
    if not len(bt):
        raise _fail(bt.path, 2, None, "no buses.")
    bus_names = _ids(bt)
    v_nom = _numbers(bt, "v_nom", 1.0)
    _first_bad(bt, v_nom <= 0, "v_nom", "v_nom must be > 0 kV.")
    # any carrier (AC, DC, H2 ...) is a node of the nodal balance; lines between DC buses use r (as PyPSA)
    bus_carrier = np.where(_strings(bt, "carrier", "AC") == "", "AC", _strings(bt, "carrier", "AC")).astype(str)
    filled: list[str] = []  # PyPSA defaults applied to columns that were left out (reported in a warning)
    bus_pos = {str(b): i for i, b in enumerate(bus_names)}
    n_node = len(bus_names)
    if all(re.fullmatch(r"-?[1-9]\d{0,17}|0", str(b)) for b in bus_names):
        bus_ids = np.array([int(b) for b in bus_names], dtype=np.int64)
    else:
        bus_ids = np.arange(n_node, dtype=np.int64)
    buses_file = bt.path

    # --------------------------------------------------------------- branches
    br_names: list[np.ndarray] = []
    br_f: list[np.ndarray] = []
    br_t: list[np.ndarray] = []
    br_b: list[np.ndarray] = []
    br_shift: list[np.ndarray] = []
    br_rate: list[np.ndarray] = []
    for comp in ("lines", "transformers"):
        maybe = table(comp)
        if maybe is None or not len(maybe):
            continue
        t = maybe
        t.require("bus0", "bus1")
        names = _ids(t)
        f = _bus_refs(t, "bus0", bus_pos, buses_file)
        to = _bus_refs(t, "bus1", bus_pos, buses_file)
        _first_bad(t, f == to, "bus1", "bus1 equals bus0 (a branch from a bus to itself).")
        _refuse_true(t, "s_nom_extendable", _extendable_message("s_nom"))
        typ = _strings(t, "type", "")
        typed = np.array([bool(str(v).strip()) for v in typ], dtype=bool)
        dc = (bus_carrier[f] == "DC") & (bus_carrier[to] == "DC") if comp == "lines" else np.zeros(len(t), bool)
        if comp == "lines":
            _first_bad(t, (bus_carrier[f] == "DC") != (bus_carrier[to] == "DC"), "bus1",
                       "a line joins a DC bus and a bus of another carrier; join them with a link.")
        # PyPSA: DC lines enter Kirchhoff's voltage law with r, AC branches with x (default 0 each)
        imp_col = np.where(dc, "r", "x")
        x = _numbers(t, "x", 0.0) if t.has("x") else np.zeros(len(t))
        r = _numbers(t, "r", 0.0) if t.has("r") else np.zeros(len(t))
        needs_x = ~typed & ~dc
        if not t.has("x") and needs_x.any():
            raise _fail(t.path, 1, "x", "required column is missing: PyPSA's default x = 0 leaves "
                                        f"{comp} without reactance, which a DC power flow cannot use; give x "
                                        "(ohm for lines, per unit on s_nom for transformers)"
                                        + (" or a standard line type (column 'type')." if comp == "lines" else "."))
        if typed.any():
            if comp != "lines":
                _first_bad(t, typed, "type", "standard transformer types are not supported; give x and s_nom "
                                             "directly.")
            table_ = line_types()
            known = np.isin(typ.astype(str), table_.index.to_numpy(dtype=str))
            _first_bad(t, typed & ~known, "type", "not one of PyPSA's standard line types (PyPSA 1.2 "
                                                  "line_types.csv; custom types are not read); give x "
                                                  "and r directly.")
            length = _numbers(t, "length", 0.0)
            par = _numbers(t, "num_parallel", 1.0)
            _first_bad(t, typed & (par <= 0), "num_parallel", "num_parallel must be > 0 for a typed line.")
            per = table_.reindex(np.where(typed, typ, table_.index[0]).astype(str))
            # PyPSA's calculate_dependent_values: x = x_per_length * length / num_parallel (same for r)
            x = np.where(typed, per["x_per_length"].to_numpy() * length / np.where(typed, par, 1.0), x)
            r = np.where(typed, per["r_per_length"].to_numpy() * length / np.where(typed, par, 1.0), r)
        if t.has("s_nom"):
            s_nom = _numbers(t, "s_nom", None, allow_inf=True)
        else:
            s_nom = np.zeros(len(t))  # PyPSA's default (no flow)
            filled.append(f"{t.path.name} column 's_nom' left out: PyPSA's default s_nom = 0 MVA applies")
        _first_bad(t, s_nom < 0, "s_nom", "negative rating; s_nom must be >= 0 MW ('inf' = unlimited).")
        s_max_pu = _numbers(t, "s_max_pu", 1.0)
        _first_bad(t, s_max_pu < 0, "s_max_pu", "negative s_max_pu; it must be >= 0.")
        if comp == "lines":
            scale = base_mva / v_nom[f] ** 2  # ohm -> per unit on base_mva
            tap = np.ones(len(t))
            shift = np.zeros(len(t))
        else:
            _first_bad(t, ~np.isfinite(s_nom) | (s_nom <= 0), "s_nom",
                       "a transformer's x is per unit on s_nom, so s_nom must be finite and > 0.")
            scale = base_mva / s_nom
            tap = _numbers(t, "tap_ratio", 1.0)
            _first_bad(t, tap <= 0, "tap_ratio", "tap_ratio must be > 0.")
            shift = np.deg2rad(_numbers(t, "phase_shift", 0.0))
        x = np.where(dc, r, x)  # the impedance that enters the DC power flow
        x_pu, r_pu = x * scale, r * scale
        if dc_model == "pglib":
            z2 = r_pu**2 + x_pu**2
            _first_bad(t, z2 == 0, "x", "zero impedance; a DC branch needs x != 0.")
            b = x_pu / z2
            shift = np.zeros(len(t))
        else:
            zero = x == 0
            if zero.any():
                i = int(np.argmax(zero))
                raise _fail(t.path, int(t.lines[i]), str(imp_col[i]),
                            f"zero {'resistance' if dc[i] else 'reactance'}"
                            + (" (PyPSA's default 0 where the cell is empty)" if not typed[i] else "")
                            + f"; a {'DC line' if dc[i] else 'branch'} in the linear power flow needs "
                            f"{imp_col[i]} != 0" + (" or a standard line type." if comp == "lines" and not dc[i]
                                                    else "."))
            b = 1.0 / (x_pu * tap)
        prefix = "line" if comp == "lines" else "transformer"
        br_names.append(np.array([f"{prefix}:{n}" for n in names], dtype=object))
        br_f.append(f)
        br_t.append(to)
        br_b.append(b)
        br_shift.append(shift)
        br_rate.append(np.where(np.isinf(s_nom), np.inf, s_nom * s_max_pu))
    cat = lambda xs, dt=float: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
    f_all, t_all = cat(br_f, np.int64), cat(br_t, np.int64)
    b_all = cat(br_b)

    # --------------------------------------------------------------- snapshots
    series_files = {n: p for n, p in files.items() if "-" in n[:-4]}
    relevant = []
    for n, p in series_files.items():
        comp, _, attr = n[:-4].partition("-")
        if (comp, attr) in SERIES:
            relevant.append((comp, attr, p))
        elif attr in REFUSED_SERIES.get(comp, set()):
            tt = load(p)
            raise _fail(p, 1, tt.col_label(1) if len(tt.header) > 1 else 1,
                        f"time-varying {comp} {attr} is not supported yet; use a static value in "
                        f"{comp}.csv.")
    if "snapshots.csv" in files:
        keys, snapshots, weights, _ = _read_snapshots(files["snapshots.csv"], load)
    else:
        if relevant:
            p = relevant[0][2]
            raise _fail(p, 1, 1, f"time series given but snapshots.csv is missing from {folder}; add "
                                 "snapshots.csv (one row per snapshot, as PyPSA exports it).")
        keys, snapshots = ["now"], pd.Index(["now"])
        weights = pd.DataFrame({"objective": [1.0], "stores": [1.0], "generators": [1.0]}, index=snapshots)
    T = len(keys)
    dt = float(weights["objective"].iloc[0])

    # -------------------------------------------------------------- carriers
    co2_of: dict[str, float] = {}
    ct = table("carriers")
    if ct is not None and len(ct):
        cn = _ids(ct)
        co2 = _numbers(ct, "co2_emissions", 0.0)
        co2_of = {str(c): float(v) for c, v in zip(cn, co2, strict=True)}

    # ------------------------------------------------------------ generators
    profiles: dict[tuple[str, str], pd.DataFrame] = {}
    gt = table("generators")
    if gt is not None and len(gt):
        gt.require("bus")
        g_ids = _ids(gt)
        g_node = _bus_refs(gt, "bus", bus_pos, buses_file)
        _refuse_true(gt, "p_nom_extendable", _extendable_message("p_nom"))
        p_nom, pmin_pu, pmax_pu = _rated_range(gt, filled)
        c1 = _numbers(gt, "marginal_cost", 0.0)
        c2 = _numbers(gt, "marginal_cost_quadratic", 0.0)
        _first_bad(gt, c2 < 0, "marginal_cost_quadratic", "negative quadratic cost; costs must be convex.")
        ru = _numbers(gt, "ramp_limit_up", np.nan)
        rd = _numbers(gt, "ramp_limit_down", np.nan)
        for v, c in ((ru, "ramp_limit_up"), (rd, "ramp_limit_down")):
            _first_bad(gt, v < 0, c, "negative ramp limit; give a fraction of p_nom >= 0 (empty = none).")
        eff = _numbers(gt, "efficiency", 1.0)
        _first_bad(gt, eff <= 0, "efficiency", "efficiency must be > 0.")
        _refuse_nondefault(gt, "sign", 1.0, "generators with sign -1 are not modelled; use a load.")
        _refuse_true(gt, "committable", "unit commitment is not modelled.")
        _refuse_set(gt, "p_set", "fixed dispatch (p_set) is not modelled; use p_min_pu = p_max_pu.")
        _refuse_set(gt, "p_init", "an initial output for ramping is not modelled.")
        g_carrier = _strings(gt, "carrier", "")
        has_series: dict[str, pd.DataFrame] = {}
        for comp, attr, p in relevant:
            if comp == "generators":
                has_series[attr] = _read_series(p, g_ids, keys, snapshots, "snapshots.csv",
                                                inactive.get("generators", set()), load=load)
        if "p_max_pu" in has_series:
            s = has_series["p_max_pu"]
            pos = {str(g): i for i, g in enumerate(g_ids)}
            cols = [pos[c] for c in s.columns]
            profiles[("gen", "max_p_mw")] = s * p_nom[cols][None, :]
        if "p_min_pu" in has_series:
            s = has_series["p_min_pu"]
            pos = {str(g): i for i, g in enumerate(g_ids)}
            cols = [pos[c] for c in s.columns]
            profiles[("gen", "min_p_mw")] = s * p_nom[cols][None, :]
        ren = np.zeros(len(gt), bool)
        if "p_max_pu" in has_series:
            ren[[int(np.flatnonzero(g_ids == c)[0]) for c in has_series["p_max_pu"].columns]] = True
        if "p_min_pu" in has_series:
            ren[[int(np.flatnonzero(g_ids == c)[0]) for c in has_series["p_min_pu"].columns]] = False
        ren &= pmin_pu == 0
        gen_kw = dict(
            gen_names=np.array([f"gen:{g}" for g in g_ids], dtype=object), gen_node=g_node,
            gen_kind=np.where(ren, RENEWABLE, DISPATCHABLE).astype(np.int8),
            gen_pmin=p_nom * pmin_pu, gen_pmax=p_nom * pmax_pu,
            gen_c0=np.zeros(len(gt)), gen_c1=c1, gen_c2=c2,
            # PyPSA: per unit of p_nom per snapshot, whatever the weighting -> MW/h
            gen_ramp_up=np.where(np.isnan(ru), np.inf, ru * p_nom / dt),
            gen_ramp_down=np.where(np.isnan(rd), np.inf, rd * p_nom / dt))
        # tCO2 per MWh electric = carrier tCO2/MWh primary / efficiency; NaN = carrier not in carriers.csv
        gen_co2 = np.array([co2_of.get(str(c), np.nan) for c in g_carrier]) / eff
        slack = _strings(gt, "control", "") == "Slack"
    else:
        for comp, _attr, p in relevant:
            if comp == "generators":
                _read_series(p, np.zeros(0, object), keys, snapshots, "snapshots.csv",
                             inactive.get("generators", set()), load=load)
        gen_kw = dict(gen_names=np.zeros(0, object), gen_node=np.zeros(0, np.int64),
                      gen_kind=np.zeros(0, np.int8), gen_pmin=np.zeros(0), gen_pmax=np.zeros(0),
                      gen_c0=np.zeros(0), gen_c1=np.zeros(0), gen_c2=np.zeros(0),
                      gen_ramp_up=np.zeros(0), gen_ramp_down=np.zeros(0))
        g_carrier = np.zeros(0, object)
        gen_co2 = np.zeros(0)
        slack = np.zeros(0, bool)

    # ------------------------------------------------------------------ loads
    lt = table("loads")
    if lt is not None and len(lt):
        lt.require("bus")
        l_ids = _ids(lt)
        l_node = _bus_refs(lt, "bus", bus_pos, buses_file)
        sign = _numbers(lt, "sign", -1.0)
        load_p = -sign * _numbers(lt, "p_set", 0.0)
        for comp, _attr, p in relevant:
            if comp == "loads":
                s = _read_series(p, l_ids, keys, snapshots, "snapshots.csv", inactive.get("loads", set()), load=load)
                pos = {str(x): i for i, x in enumerate(l_ids)}
                profiles[("load", "p_mw")] = s * (-sign[[pos[c] for c in s.columns]])[None, :]
        l_names = np.array([f"load:{x}" for x in l_ids], dtype=object)
    else:
        for comp, _attr, p in relevant:
            if comp == "loads":
                _read_series(p, np.zeros(0, object), keys, snapshots, "snapshots.csv",
                             inactive.get("loads", set()), load=load)
        l_names, l_node, load_p = np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0)

    # ---------------------------------------------------------------- storage
    st_kw: dict[str, np.ndarray] = {}
    st_cyclic = np.zeros(0, bool)
    stt = table("storage_units")
    if stt is not None and len(stt):
        stt.require("bus")
        s_ids = _ids(stt)
        s_node = _bus_refs(stt, "bus", bus_pos, buses_file)
        _refuse_true(stt, "p_nom_extendable", _extendable_message("p_nom"))
        p_nom = _p_nom(stt, filled)
        _first_bad(stt, p_nom < 0, "p_nom", "negative rating; p_nom must be >= 0 MW.")
        hours = _numbers(stt, "max_hours", 1.0)
        _first_bad(stt, hours < 0, "max_hours", "negative max_hours.")
        lo = _numbers(stt, "p_min_pu", -1.0)
        hi = _numbers(stt, "p_max_pu", 1.0)
        _first_bad(stt, lo > 0, "p_min_pu", "p_min_pu > 0 (forced charging) is not supported.")
        _first_bad(stt, hi < 0, "p_max_pu", "p_max_pu < 0 (forced discharging) is not supported.")
        eta_c = _numbers(stt, "efficiency_store", 1.0)
        eta_d = _numbers(stt, "efficiency_dispatch", 1.0)
        for v, c in ((eta_c, "efficiency_store"), (eta_d, "efficiency_dispatch")):
            _first_bad(stt, (v <= 0) | (v > 1), c, "efficiency must be in (0, 1].")
        e_max = p_nom * hours
        e0 = _numbers(stt, "state_of_charge_initial", 0.0)
        _first_bad(stt, (e0 < 0) | (e0 > e_max + 1e-9), "state_of_charge_initial",
                   "state_of_charge_initial must be in [0, p_nom * max_hours] MWh.")
        st_cyclic = _bools(stt, "cyclic_state_of_charge", False)
        for c, d, why in (("standing_loss", 0.0, "standing losses are not modelled."),
                          ("marginal_cost", 0.0, "storage dispatch costs are not modelled."),
                          ("marginal_cost_quadratic", 0.0, "storage dispatch costs are not modelled."),
                          ("marginal_cost_storage", 0.0, "storage holding costs are not modelled."),
                          ("inflow", 0.0, "inflows are not modelled.")):
            _refuse_nondefault(stt, c, d, why)
        _refuse_true(stt, "state_of_charge_initial_per_period", "multi-period storage is not modelled.")
        _refuse_true(stt, "cyclic_state_of_charge_per_period", "multi-period storage is not modelled.")
        for c in ("p_set", "p_dispatch_set", "p_store_set", "state_of_charge_set"):
            _refuse_set(stt, c, "fixed storage schedules are not modelled.")
        # cyclic: start = end = state_of_charge_initial; otherwise start at it and end empty
        e_final = np.where(st_cyclic, e0, 0.0)
        st_kw = dict(
            st_names=np.array([f"storage:{s}" for s in s_ids], dtype=object), st_node=s_node,
            st_p_charge=-lo * p_nom, st_p_discharge=hi * p_nom, st_e_min=np.zeros(len(stt)),
            st_e_max=e_max, st_e_init=e0, st_e_final=e_final,
            st_eta_charge=eta_c, st_eta_discharge=eta_d)

    # ------------------------------------------------------------------ links
    dc_kw = _links(table("links"), bus_pos, buses_file, filled)

    # ------------------------------------------------- islands and references
    node_island = V.islands(n_node, f_all[b_all != 0], t_all[b_all != 0])
    g_node_all = np.r_[gen_kw["gen_node"], dc_kw["dc_f"], dc_kw["dc_t"]].astype(np.int64)
    g_node = np.asarray(gen_kw["gen_node"], dtype=np.int64)
    order = np.r_[g_node[slack], g_node[~slack], dc_kw["dc_f"], dc_kw["dc_t"], np.arange(n_node)].astype(np.int64)
    _, first = np.unique(order, return_index=True)
    ref_cand = order[np.sort(first)]
    node_label = np.array([f"bus:{b}" for b in bus_names], dtype=object)
    fixed = np.zeros(n_node)
    ref_node, live = V.choose_references(node_island, ref_cand, g_node_all, l_node, load_p, l_names,
                                         fixed, node_label, str(folder))
    # a load profile may make a statically empty island live: profiles are checked by choose_references
    # through the static values only, so islands with load in any snapshot must have generation
    if ("load", "p_mw") in profiles and len(l_node):
        pf = profiles[("load", "p_mw")]
        pos = {str(n): i for i, n in enumerate(l_names)}
        idx = np.array([pos[f"load:{c}"] for c in pf.columns], dtype=np.int64)
        peak = load_p.copy()
        peak[idx] = np.abs(pf.to_numpy()).max(axis=0) if len(pf) else 0.0
        V.choose_references(node_island, ref_cand, g_node_all, l_node, peak, l_names, fixed,
                            node_label, str(folder))
    pub = live[node_island]
    arrays = NetworkArrays(
        name=net_name, base_mva=float(base_mva), n_node=n_node,
        ref_node=ref_node[live], node_island=node_island, node_fixed_demand=fixed,
        bus_ids=bus_ids[pub], bus_node=np.flatnonzero(pub),
        br_names=cat(br_names, object), br_f=f_all, br_t=t_all, br_b=b_all,
        br_shift=cat(br_shift), br_rate=cat(br_rate),
        br_angmin=np.full(f_all.size, -np.inf), br_angmax=np.full(f_all.size, np.inf),
        load_names=l_names, load_node=l_node, load_p=load_p,
        gen_co2=np.asarray(gen_co2, dtype=float), gen_fuel=np.asarray(g_carrier, dtype=object),
        meta={"source": str(folder), "format": "csv_folder", "dc_model": dc_model,
              "bus_names": np.asarray(bus_names[pub], dtype=object),
              "gen_carrier": np.asarray(g_carrier, dtype=object),
              "gen_co2_t_per_mwh": np.asarray(gen_co2, dtype=float),
              "st_cyclic": np.asarray(st_cyclic, dtype=bool),
              # PyPSA leaves the final state of charge of non-cyclic units free; the DC-OPF
              # fixes it (to 0 MWh): a formulation that supports a free end can use this mask
              "st_final_free": ~np.asarray(st_cyclic, dtype=bool),
              "period_hours": dt, "n_snapshots": T},
        **gen_kw, **st_kw, **dc_kw,
    )
    if filled:
        warnings.warn(f"{folder}: " + "; ".join(filled), UserWarning, stacklevel=3)
    return CsvCase(path=folder, arrays=arrays, profiles=profiles, snapshots=snapshots,
                   weightings=weights, bus_names=np.asarray(bus_names[pub], dtype=object))


def _links(kt: Table | None, bus_pos: Mapping[str, int], buses_file: Path, filled: list[str]) -> dict[str, Any]:
    """``links.csv`` -> the controllable-link arrays (``dc_*``): PyPSA's linear ``Link``.

    ``p0`` (MW withdrawn at ``bus0``) in ``[p_min_pu, p_max_pu] * p_nom``; ``efficiency * p0``
    delivered at ``bus1``; ``marginal_cost`` ($/MWh) on ``p0``.  A DC line or a converter alike.
    """
    if kt is None or not len(kt):
        return dict(dc_names=np.zeros(0, object), dc_f=np.zeros(0, np.int64), dc_t=np.zeros(0, np.int64),
                    dc_pmin=np.zeros(0), dc_pmax=np.zeros(0), dc_eff=np.zeros(0), dc_loss=np.zeros(0),
                    dc_c0=np.zeros(0), dc_c1=np.zeros(0))
    kt.require("bus0", "bus1")
    ids = _ids(kt)
    f = _bus_refs(kt, "bus0", bus_pos, buses_file)
    to = _bus_refs(kt, "bus1", bus_pos, buses_file)
    _first_bad(kt, f == to, "bus1", "bus1 equals bus0 (a link from a bus to itself).")
    for col in kt.header:
        if re.fullmatch(r"bus[2-9]\d*", col):
            _first_bad(kt, np.array([bool(str(v).strip()) for v in kt.raw(col)], dtype=bool), col,
                       "links with more than two buses (bus2, ...) are not modelled.")
    _refuse_true(kt, "p_nom_extendable", _extendable_message("p_nom"))
    _refuse_true(kt, "committable", "unit commitment is not modelled.")
    for c, d, why in (("marginal_cost_quadratic", 0.0, "quadratic link costs are not modelled."),
                      ("stand_by_cost", 0.0, "stand-by costs are not modelled.")):
        _refuse_nondefault(kt, c, d, why)
    for c in ("p_set", "ramp_limit_up", "ramp_limit_down"):
        _refuse_set(kt, c, "fixed link schedules and link ramp limits are not modelled.")
    p_nom, lo, hi = _rated_range(kt, filled)
    eff = _numbers(kt, "efficiency", 1.0)
    _first_bad(kt, eff <= 0, "efficiency", "efficiency must be > 0.")
    return dict(dc_names=np.array([f"link:{x}" for x in ids], dtype=object), dc_f=f, dc_t=to,
                dc_pmin=lo * p_nom, dc_pmax=hi * p_nom, dc_eff=eff, dc_loss=np.zeros(len(kt)),
                dc_c0=np.zeros(len(kt)), dc_c1=_numbers(kt, "marginal_cost", 0.0))


# ============================================================== solving
def solve_case(case: CsvCase, *, hours: int | None = None,
               profiles: Mapping[tuple[str, str], Any] | None = None, **kwargs: Any) -> Any:
    """Solve a :class:`CsvCase` over its snapshots (or the first ``hours`` of them)."""
    from ..dcopf import DCOPF

    T = case.n_snapshots
    if hours is not None:
        if int(hours) != hours or not 1 <= hours <= T:
            raise InputError(f"{case.path}: hours={hours!r} but the folder has {T} snapshot(s); give "
                             f"1 <= hours <= {T} (the first hours snapshots are solved).")
        T = int(hours)
    if "period_hours" in kwargs and kwargs["period_hours"] != case.period_hours:
        raise InputError(f"{case.path}: period_hours={kwargs['period_hours']!r} but the snapshot "
                         f"weightings say {case.period_hours:g} h; edit snapshots.csv instead.")
    kwargs.pop("period_hours", None)
    dc_model = kwargs.pop("dc_model", None)
    if dc_model not in (None, case.arrays.meta.get("dc_model"), "pandapower"):
        raise InputError("pass dc_model to read_csv_folder / solve_csv_folder, not to the solve of a "
                         "CsvCase.")
    prof: dict[tuple[str, str], Any] = {k: v.iloc[:T] for k, v in case.profiles.items()}
    prof.update(profiles or {})
    snaps = case.snapshots[:T]
    if isinstance(snaps, pd.DatetimeIndex):
        kwargs.setdefault("start", snaps[0])
    kwargs.setdefault("demo_profiles", False)
    ds = DCOPF(case.arrays, hours=T, period_hours=case.period_hours, **kwargs).solve(prof or None)
    ds = ds.assign_coords(
        snapshot=("time", np.asarray(snaps.astype(str), dtype=str)),
        gen_carrier=("gen", np.asarray(case.arrays.meta["gen_carrier"], dtype=str)),
    )
    ds = name_coords(ds, case.arrays)
    ds.attrs.update(source=str(case.path), source_format="csv_folder")
    return ds


#: element-name prefix of the compiled arrays -> PyPSA component list name
_COMPONENT_OF = {"gen": "generators", "line": "lines", "transformer": "transformers",
                 "storage": "storage_units", "link": "links"}


def _split_prefixed(names: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``"line:l1"`` -> component list name ``"lines"``, element name ``"l1"`` and the position of the
    element among those of its component (in the order of its table)."""
    if not len(names):
        return np.zeros(0, str), np.zeros(0, str), np.zeros(0, np.int64)
    s = pd.Series(np.asarray(names, dtype=str), dtype=object)
    parts = s.str.partition(":")
    comp = parts[0].map(_COMPONENT_OF).fillna(parts[0]).to_numpy(dtype=str)
    pos = pd.Series(comp).groupby(comp).cumcount().to_numpy(dtype=np.int64)
    return comp, parts[2].to_numpy(dtype=str), pos


def name_coords(ds: Any, arrays: NetworkArrays) -> Any:
    """Element names of a CSV folder / ``pypsa.Network`` as the index coordinates of ``ds``.

    ``bus``, ``gen``, ``storage`` (and ``dcline``) take the PyPSA names; ``branch`` takes the line and
    transformer names when they are unique across both tables, else ``"line:NAME"`` /
    ``"transformer:NAME"``.  Side coordinates keep the rest: ``bus_pos`` (position of the bus in
    ``buses.csv``), ``bus_name`` (= ``bus``, kept for compatibility), ``<dim>_pos`` (position in its
    component table), ``<dim>_component`` (``generators``, ``lines``, ...) and ``branch_name``
    (the plain element name).
    """
    meta = arrays.meta
    ds = ds.assign_coords(bus_pos=("bus", np.asarray(arrays.bus_node, dtype=np.int64)))
    names = np.asarray(meta["bus_names"], dtype=str)
    ds = ds.assign_coords(bus=("bus", names), bus_name=("bus", names))
    for dim in ("gen", "branch", "storage", "dcline"):
        if dim not in ds.dims:
            continue
        comp, plain, pos = _split_prefixed(np.asarray(ds[dim].values, dtype=str))
        attrs = dict(ds[dim].attrs)
        index = plain if pd.Index(plain).is_unique else np.asarray(ds[dim].values, dtype=str)
        ds = ds.assign_coords({dim: (dim, index, attrs), f"{dim}_pos": (dim, pos),
                               f"{dim}_component": (dim, comp)})
        if dim == "branch":
            ds = ds.assign_coords(branch_name=("branch", plain))
    return ds


def solve_csv_folder(path: str | os.PathLike[str], *, base_mva: float = BASE_MVA,
                     dc_model: str = "pypsa", **kwargs: Any) -> Any:
    """Read a CSV network folder and solve it over its snapshots.

    Keyword arguments go to :class:`nodalopt.DCOPF` (``voll``, ``solver``,
    ``solver_options``, ...), plus ``hours`` (solve the first ``hours``
    snapshots) and ``profiles`` (override the folder's time series).  The period
    length is the snapshot weighting.  Returns the result ``xarray.Dataset``
    with the extra coordinates ``bus_name``, ``snapshot`` and ``gen_carrier``.
    """
    return solve_case(read_csv_folder(path, base_mva=base_mva, dc_model=dc_model), **kwargs)


# ============================================================== results
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(rf"^(?:{_NUM_RE}|{_INF_RE}|[+-]?nan)$", re.IGNORECASE)


def neutralise_cell(value: Any) -> Any:
    """Make a text cell harmless for spreadsheets: a leading ``= + - @`` (or tab / CR) gets a ``'`` prefix.

    OWASP's advice against CSV formula injection.  Plain numbers (``-1.5``, ``+3``) and
    non-strings are returned unchanged, so numeric cells and numeric names keep their meaning.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def neutralise(values: Sequence[Any] | np.ndarray) -> list[Any]:
    """:func:`neutralise_cell` of each value."""
    return [neutralise_cell(v) for v in values]


_PREFIX = {"gen": "generators", "storage": "storage_units", "line": "lines", "transformer": "transformers"}


def _split(names: Sequence[str] | np.ndarray, default: str) -> dict[str, list[tuple[int, str]]]:
    """Group element names by CSV component: ``"line:l1"`` -> ("lines", "l1")."""
    out: dict[str, list[tuple[int, str]]] = {}
    for i, n in enumerate(names):
        pre, sep, rest = str(n).partition(":")
        comp = _PREFIX.get(pre) if sep else None
        if comp is None:
            out.setdefault(default, []).append((i, str(n)))
        else:
            out.setdefault(comp, []).append((i, rest))
    return out


def write_csv_results(ds: Any, outdir: str | os.PathLike[str]) -> list[Path]:
    """Write a solved case as CSV files in ``outdir`` (PyPSA output naming).

    Files (rows = snapshots, first column ``snapshot``): ``buses-marginal_price.csv``
    (LMP, $/MWh), ``buses-marginal_price_energy.csv``, ``buses-marginal_price_congestion.csv``,
    ``buses-load_shed.csv`` (MW), ``generators-p.csv`` (MW), and when the Dataset carries
    carbon results ``buses-marginal_price_carbon.csv``, ``buses-lme.csv`` (tCO2/MWh),
    ``buses-carbon_intensity.csv`` (tCO2/MWh), ``generators-emissions.csv`` (tCO2/h); ``lines-p0.csv`` /
    ``transformers-p0.csv`` (MW from bus0 to bus1), ``lines-mu.csv`` / ``transformers-mu.csv``
    (signed shadow price, $/MWh per MW), ``storage_units-p.csv`` (MW, discharge > 0),
    ``storage_units-state_of_charge.csv`` (MWh) and ``result_info.csv`` (key, value of the
    solve attributes).  Columns are element names as in the input folder (bus names
    when the Dataset has a ``bus_name`` coordinate; full element names for other sources).
    Text cells that a spreadsheet would run as a formula (leading ``= + - @``) get a ``'``
    prefix (:func:`neutralise_cell`).
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    if "snapshot" in ds.coords:
        index = pd.Index(np.asarray(ds["snapshot"].values, dtype=str), name="snapshot")
    else:
        index = pd.Index(pd.DatetimeIndex(ds["time"].values).astype(str), name="snapshot")
    index = pd.Index(neutralise(index), name="snapshot")
    # CSV / PyPSA results: the bus names (bus_name, = bus); other sources: the bus ids (their bus_name,
    # e.g. pandapower's net.bus.name, is a side coordinate only)
    named = "bus_pos" in ds.coords and "bus_name" in ds.coords
    bus_cols = neutralise(np.asarray(ds["bus_name" if named else "bus"].values).astype(str))
    written: list[Path] = []

    def put(name: str, values: np.ndarray, cols: Sequence[str] | np.ndarray) -> None:
        p = out / name
        pd.DataFrame(np.asarray(values, dtype=float), index=index, columns=list(cols)).to_csv(p)
        written.append(p)

    for var, fname in (("lmp", "buses-marginal_price.csv"), ("lmp_energy", "buses-marginal_price_energy.csv"),
                       ("lmp_congestion", "buses-marginal_price_congestion.csv"),
                       ("lmp_carbon", "buses-marginal_price_carbon.csv"), ("lme", "buses-lme.csv"),
                       ("carbon_intensity", "buses-carbon_intensity.csv"),
                       ("load_shed", "buses-load_shed.csv")):
        if var in ds:
            put(fname, ds[var].transpose("time", "bus").values, bus_cols)
    for dim, vars_ in (("gen", (("p_gen", "p"), ("emissions", "emissions"))),
                       ("branch", (("flow", "p0"), ("branch_mu", "mu"))),
                       ("storage", (("p_storage", "p"), ("soc_mwh", "state_of_charge")))):
        if dim not in ds.dims:
            continue
        default = {"gen": "generators", "branch": "branches", "storage": "storage_units"}[dim]
        if f"{dim}_component" in ds.coords:  # a CSV / PyPSA result: named by component and element
            comps = np.asarray(ds[f"{dim}_component"].values, dtype=str)
            plain = np.asarray(ds[f"{dim}_name"].values if f"{dim}_name" in ds.coords else ds[dim].values,
                               dtype=str)
            groups: dict[str, list[tuple[int, str]]] = {}
            for i, (c, nm) in enumerate(zip(comps, plain, strict=True)):
                groups.setdefault(c, []).append((i, nm))
        else:
            groups = _split(np.asarray(ds[dim].values, dtype=str), default)
        for comp, items in groups.items():
            idx = [i for i, _ in items]
            for var, attr in vars_:
                if var in ds:
                    put(f"{comp}-{attr}.csv", ds[var].transpose("time", dim).values[:, idx],
                        neutralise([n for _, n in items]))
    info = {neutralise_cell(k): neutralise_cell(v) for k, v in ds.attrs.items()
            if isinstance(v, str | int | float | bool | np.number)}
    p = out / "result_info.csv"
    pd.Series(info, name="value").rename_axis("key").to_csv(p)
    written.append(p)
    return written
