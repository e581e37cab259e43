"""A pandapower JSON reader that never imports, instantiates or evaluates anything named in the file.

pandapower's own reader (``pandapower.from_json``) rebuilds objects from the
``_module``/``_class`` names it finds in the file, importing those modules on
the way.  This module reads the same files without that machinery:

* the file is read as bytes (regular files only, at most :data:`MAX_JSON_BYTES`),
  decoded strictly as UTF-8 and parsed with :func:`json.loads` after a check
  that no JSON value nests deeper than :data:`MAX_DEPTH` levels (the string-encoded
  tables are parsed, and depth-checked, the same way);
* only the structure :func:`pandapower.to_json` writes is accepted: a
  ``pandapower.auxiliary.pandapowerNet`` whose entries are tables
  (``pandas.core.frame.DataFrame`` in ``orient="split"`` with a ``dtype`` map of
  numeric, bool, nullable-integer or object dtypes), plain JSON values
  (``std_types``, ``name``, ``sn_mva``, ...), numpy scalars and arrays, and
  ``builtins`` tuples, sets and frozensets of plain values;
* every other ``_module``/``_class``/``_object`` reference (functions, controllers,
  geopandas frames, MultiIndex tables, anything in any other module) is an
  :class:`~nodalopt.errors.InputError` naming the file and the JSON key path
  (e.g. ``bus._object.data[3][7]``);
* the net is :func:`pandapower.create_empty_network` with each entry replaced by a
  value built here from plain values, as ``pandapowerNet.update`` does in
  pandapower's reader (no format conversion, like ``from_json_string``'s default).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["MAX_DEPTH", "MAX_JSON_BYTES", "read_pandapower_json", "loads_pandapower_json"]

MAX_JSON_BYTES = 200 * 1024 * 1024
"""Files larger than this are refused before they are read."""
MAX_DEPTH = 100
"""Deepest nesting of JSON arrays/objects accepted (pandapower writes at most about 6)."""

_REF_KEYS = frozenset({"_module", "_class", "_object"})
_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES: frozenset[type] = frozenset(_SCALARS)
_LABEL_TYPES: frozenset[type] = frozenset({int, float, str})
_NET = ("pandapower.auxiliary", "pandapowerNet")
_FRAME_MODULES = frozenset({"pandas.core.frame", "pandas"})
_FRAME_KEYS = frozenset({"_module", "_class", "_object", "orient", "dtype", "is_multiindex",
                         "is_multicolumn", "index_name", "column_name"})
_NP_SCALARS: dict[str, Any] = {
    **{f"int{b}": getattr(np, f"int{b}") for b in (8, 16, 32, 64)},
    **{f"uint{b}": getattr(np, f"uint{b}") for b in (8, 16, 32, 64)},
    "float16": np.float16, "float32": np.float32, "float64": np.float64,
    "bool": np.bool_, "bool_": np.bool_,
}
_BUILTIN_CONTAINERS: dict[str, Callable[[list[Any]], Any]] = {
    "tuple": tuple, "set": set, "frozenset": frozenset}
# dtype string written by pandas -> (value types the column may hold, how to build it)
_NUM: frozenset[type] = frozenset({int, float, type(None)})
_INT: frozenset[type] = frozenset({int})
_NULLABLE_INT: frozenset[type] = frozenset({int, type(None)})
_BOOL: frozenset[type] = frozenset({bool})
_NULLABLE_BOOL: frozenset[type] = frozenset({bool, type(None)})
_COLUMN_DTYPES: dict[str, frozenset[type]] = {
    **{f"float{b}": _NUM for b in (16, 32, 64)},
    **{f"int{b}": _INT for b in (8, 16, 32, 64)},
    **{f"uint{b}": _INT for b in (8, 16, 32, 64)},
    **{f"Int{b}": _NULLABLE_INT for b in (8, 16, 32, 64)},
    **{f"UInt{b}": _NULLABLE_INT for b in (8, 16, 32, 64)},
    "Float32": _NUM, "Float64": _NUM,
    "bool": _BOOL, "boolean": _NULLABLE_BOOL,
    "object": _SCALAR_TYPES | {list, dict},
}
# a JSON string literal (escapes included); used to blank strings out before counting brackets
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def read_pandapower_json(path: str | os.PathLike[str]) -> Any:
    """Read a pandapower JSON file written by :func:`pandapower.to_json`, safely.

    Parameters
    ----------
    path : str or path
        The ``.json`` file; must be a regular file of at most :data:`MAX_JSON_BYTES`.

    Returns
    -------
    pandapowerNet
        The net, built from plain values (nothing named in the file is imported).

    Raises
    ------
    InputError
        Not a regular file, too large, not UTF-8, not JSON, nested too deeply, or
        holding anything but the tables and plain values of a pandapower net;
        the message names the file and the JSON key path.
    """
    p = Path(path)
    return loads_pandapower_json(_read_bytes(p), source=str(p))


def loads_pandapower_json(data: bytes | str, source: str = "<string>") -> Any:
    """Build a pandapower net from the bytes (or text) of a pandapower JSON file.

    Parameters
    ----------
    data : bytes or str
        The file's content; bytes are decoded strictly as UTF-8.
    source : str
        Name used in error messages (the file path).

    Returns
    -------
    pandapowerNet
        See :func:`read_pandapower_json`.
    """
    if isinstance(data, bytes):
        if len(data) > MAX_JSON_BYTES:
            raise InputError(f"{source}: {len(data)} bytes, over the {MAX_JSON_BYTES}-byte limit.")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise InputError(f"{source}: not UTF-8 (byte 0x{data[exc.start]:02x} at line {line}, byte offset "
                             f"{exc.start}); pandapower JSON files are UTF-8: re-save the file as UTF-8 "
                             "(e.g. with pandapower.to_json).") from None
    else:
        text = data
    return _Reader(source).net(_parse(text, source, ""))


def _read_bytes(p: Path) -> bytes:
    """The bytes of a regular file, refusing FIFOs, devices, folders and files over the limit."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{p}: no such file.") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot open ({exc.strerror}).") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{p}: not a regular file; give a pandapower .json file.")
        if st.st_size > MAX_JSON_BYTES:
            raise InputError(f"{p}: {st.st_size} bytes, over the {MAX_JSON_BYTES}-byte limit.")
        data = fh.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise InputError(f"{p}: over the {MAX_JSON_BYTES}-byte limit (the file grew while read).")
    return data


def _where(source: str, path: str) -> str:
    return f"{source}: at key path '{path}'" if path else f"{source}"


def _check_depth(text: str, source: str, path: str) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` (vectorized bracket count outside strings)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    b = np.frombuffer(_STRING.sub('""', text).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    opens = (b == ord("[")) | (b == ord("{"))
    pos = np.flatnonzero(opens | (b == ord("]")) | (b == ord("}")))
    depth = np.cumsum(np.where(opens[pos], 1, -1))
    if depth.size and depth.max() > MAX_DEPTH:
        at = int(pos[int(np.argmax(depth > MAX_DEPTH))])
        line = int(np.count_nonzero(b[:at] == ord("\n"))) + 1
        inside = f" (in the JSON string at key path '{path}')" if path else ""
        raise InputError(f"{source}: JSON nested deeper than {MAX_DEPTH} levels at line {line}{inside}; "
                         "a pandapower net is never that deep.")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _Duplicate(k)
            seen.add(k)
    return d


class _Duplicate(Exception):
    pass


def _parse(text: str, source: str, path: str) -> Any:
    """``json.loads`` after the depth check, with every failure an InputError naming file and key path."""
    _check_depth(text, source, path)
    inside = f" (in the JSON string at key path '{path}')" if path else ""
    try:
        return json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON{inside}: line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}.") from None
    except _Duplicate as exc:
        raise InputError(f"{source}: duplicate key {exc.args[0]!r}{inside}; pandapower never writes one.") from None
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply{inside}.") from None
    except ValueError as exc:  # e.g. integers beyond Python's digit limit
        raise InputError(f"{source}: unreadable JSON value{inside}: {exc}.") from None


def _is_ref(o: Any) -> bool:
    return isinstance(o, dict) and not _REF_KEYS.isdisjoint(o)


class _Reader:
    """Turns the parsed document into a pandapowerNet, checking each part against what pandapower writes."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, msg: str) -> InputError:
        return InputError(f"{_where(self.source, path)}: {msg}")

    def refuse(self, o: dict[str, Any], path: str, what: str = "") -> InputError:
        mod, cls = o.get("_module"), o.get("_class")
        return self.fail(path or "(top level)",
                         f"refuses to load object of module {mod!r}, class {cls!r}{what}; a pandapower JSON "
                         "file may hold only the net's tables (pandas DataFrames), plain values, numpy "
                         "scalars/arrays and tuples/sets. Nothing named in the file is "
                         "imported or run.")

    # -- the net ---------------------------------------------------------------------------------
    def net(self, doc: Any) -> Any:
        if not isinstance(doc, dict):
            raise self.fail("", f"the top level is a JSON {type(doc).__name__}, not a pandapower net.")
        if not _is_ref(doc):
            hint = (" This looks like pandapower's pre-2.0 format: re-save it with a current pandapower "
                    "(pandapower.to_json).") if "bus" in doc else ""
            raise self.fail("", f"not a pandapower net (no '_module'/'_class' header).{hint}")
        if (doc.get("_module"), doc.get("_class")) != _NET or set(doc) != _REF_KEYS:
            raise self.refuse(doc, "")
        body = doc["_object"]
        if not isinstance(body, dict):
            raise self.fail("_object", "the net's body must be a JSON object of tables and values "
                            f"(got a {type(body).__name__}).")
        entries = {}
        for key, val in body.items():
            if key.startswith("_"):
                raise self.fail(key, "keys starting with '_' are pandapower internals, which "
                                "pandapower.to_json never writes.")
            entries[key] = self.value(val, key)
        import pandapower as pp

        net = pp.create_empty_network()  # checked first, built last: a refused file costs no net
        for key, val in entries.items():
            if isinstance(net.get(key), pd.DataFrame) and not isinstance(val, pd.DataFrame):
                raise self.fail(key, f"pandapower keeps the table {key!r} here, but the file holds a "
                                f"{type(val).__name__}.")
        net.update(entries)
        return net

    # -- plain values ----------------------------------------------------------------------------
    def value(self, o: Any, path: str) -> Any:
        """Plain JSON values; the only object references allowed are tables, numpy scalars/arrays and builtins."""
        if isinstance(o, _SCALARS):
            return o
        if isinstance(o, list):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(o)]
        if not _is_ref(o):
            return {k: self.value(v, f"{path}.{k}") for k, v in o.items()}
        mod, cls, obj = o.get("_module"), o.get("_class"), o.get("_object")
        if cls == "DataFrame":  # element tables, and tables nested in dicts (SimBench's net.profiles)
            return self.table(o, path)
        extra = set(o) - _REF_KEYS
        if mod == "numpy" and cls in _NP_SCALARS and not extra:
            return self.np_scalar(cls, obj, path)
        if mod == "numpy" and cls == "array" and extra <= {"dtype"} and isinstance(obj, list):
            dt = o.get("dtype")
            if dt is not None and dt not in _NP_SCALARS and dt != "object":
                raise self.fail(f"{path}.dtype", f"numpy array dtype {dt!r} is not one of "
                                f"{sorted(_NP_SCALARS)} or 'object'.")
            vals = [self.value(v, f"{path}._object[{i}]") for i, v in enumerate(obj)]
            try:
                return np.array(vals, dtype=dt)
            except (TypeError, ValueError, OverflowError) as exc:
                raise self.fail(f"{path}._object", f"not a numpy array of {dt}: {exc}.") from None
        if mod == "builtins" and cls in _BUILTIN_CONTAINERS and not extra and isinstance(obj, list):
            vals = [self.value(v, f"{path}._object[{i}]") for i, v in enumerate(obj)]
            try:
                return _BUILTIN_CONTAINERS[cls](vals)
            except TypeError as exc:
                raise self.fail(f"{path}._object", f"not a {cls}: {exc}.") from None
        raise self.refuse(o, path)

    def np_scalar(self, cls: str, obj: Any, path: str) -> Any:
        t = _NP_SCALARS[cls]
        if t is np.bool_:
            if obj in ("true", "false") or type(obj) is bool:  # a Python bool, as pandapower returns
                return obj in ("true", True)  # (pandapower's bool("false") would give True)
        elif issubclass(t, np.floating):
            if type(obj) in (int, float) or obj in ("nan", "inf", "-inf"):
                return t(obj)
        elif type(obj) is int:
            try:
                return t(obj)
            except OverflowError:
                raise self.fail(f"{path}._object", f"{obj} is out of range for numpy {cls}.") from None
        raise self.fail(f"{path}._object", f"{obj!r} is not a numpy {cls} value.")

    # -- tables ----------------------------------------------------------------------------------
    def table(self, o: dict[str, Any], path: str) -> pd.DataFrame:
        """A DataFrame as ``pandapower.io_utils.json_dataframe`` writes it (orient 'split')."""
        if o.get("_module") not in _FRAME_MODULES or set(o) - _FRAME_KEYS:
            bad = sorted(set(o) - _FRAME_KEYS)
            raise self.refuse(o, path, f" with keys {bad}" if bad else "")
        if o.get("orient") != "split" or o.get("is_multiindex", False) or o.get("is_multicolumn", False):
            raise self.fail(path, "only tables in orient 'split' without MultiIndex (what pandapower.to_json "
                            "writes for the element tables) are read; got orient "
                            f"{o.get('orient')!r}, is_multiindex {o.get('is_multiindex')!r}, "
                            f"is_multicolumn {o.get('is_multicolumn')!r}.")
        for k in ("is_multiindex", "is_multicolumn"):
            if k in o and type(o[k]) is not bool:
                raise self.fail(f"{path}.{k}", "must be true or false.")
        raw = o.get("_object")
        if not isinstance(raw, str):
            raise self.fail(f"{path}._object", "a table's '_object' must be the JSON string pandas writes "
                            f"(got a {type(raw).__name__}).")
        inner = f"{path}._object"
        split = _parse(raw, self.source, inner)
        if not isinstance(split, dict) or set(split) != {"columns", "index", "data"}:
            keys = sorted(split) if isinstance(split, dict) else type(split).__name__
            raise self.fail(inner, f"a table must be an object with 'columns', 'index' and 'data' (got {keys}).")
        columns, index, data = split["columns"], split["index"], split["data"]
        for name, seq in (("columns", columns), ("index", index), ("data", data)):
            if not isinstance(seq, list):
                raise self.fail(f"{inner}.{name}", f"must be a list (got a {type(seq).__name__}).")
        for i, c in enumerate(columns):
            if type(c) not in (str, int):
                raise self.fail(f"{inner}.columns[{i}]", f"column labels are strings or integers (got {c!r}).")
        if len(set(columns)) != len(columns):
            dup = pd.Index(columns)[pd.Index(columns).duplicated()][0]
            raise self.fail(f"{inner}.columns", f"duplicate column {dup!r}.")
        if not set(map(type, index)) <= _LABEL_TYPES:
            i = next(i for i, v in enumerate(index) if type(v) not in _LABEL_TYPES)
            raise self.fail(f"{inner}.index[{i}]", f"index labels are numbers or strings (got {index[i]!r:.80}).")
        if len(data) != len(index):
            raise self.fail(f"{inner}.data", f"{len(data)} rows for {len(index)} index labels.")
        if data and (set(map(type, data)) != {list} or set(map(len, data)) != {len(columns)}):
            i = next(i for i, r in enumerate(data) if type(r) is not list or len(r) != len(columns))
            raise self.fail(f"{inner}.data[{i}]", f"each row must be a list of {len(columns)} values "
                            f"(one per column), got {data[i]!r:.80}.")
        dtypes = self.dtypes(o, columns, path)
        cols = list(zip(*data, strict=True)) if data else [() for _ in columns]
        arrays = {c: self.column(cols[j], dtypes.get(c), inner, j, c) for j, c in enumerate(columns)}
        idx = pd.Index(index) if index else pd.Index([], dtype=np.int64)
        df = pd.DataFrame(arrays, index=idx, columns=pd.Index(columns, dtype=None if columns else object))
        for key, attr in (("index_name", "index"), ("column_name", "columns")):
            if key in o:
                label = o[key]
                if type(label) not in (str, int, type(None)):
                    raise self.fail(f"{path}.{key}", f"must be a string (got {label!r:.80}).")
                getattr(df, attr).name = label
        return df

    def dtypes(self, o: dict[str, Any], columns: list[Any], path: str) -> dict[Any, str]:
        dt = o.get("dtype", {})
        if not isinstance(dt, dict):
            raise self.fail(f"{path}.dtype", "must map column names to dtype strings.")
        cols = set(columns)
        for k, v in dt.items():
            if k not in cols:
                raise self.fail(f"{path}.dtype.{k}", f"dtype given for {k!r}, which is not a column.")
            if v not in _COLUMN_DTYPES:
                raise self.fail(f"{path}.dtype.{k}", f"dtype {v!r} is not read; known dtypes: "
                                f"{sorted(_COLUMN_DTYPES)}.")
        return dt

    def column(self, vals: tuple[Any, ...], dtype: str | None, inner: str, j: int, name: Any) -> Any:
        """One column, checked against its dtype (pandas' own parse would coerce silently)."""
        n = len(vals)
        types = set(map(type, vals))
        if dtype is None:  # pandapower writes no dtype only when the labels are not strings: infer
            dtype = ("bool" if types == _BOOL else "int64" if types == _INT
                     else "float64" if types and types <= _NUM else "object")
        allowed = _COLUMN_DTYPES[dtype]
        if not types <= allowed:
            i = next(i for i, v in enumerate(vals) if type(v) not in allowed)
            raise self.fail(f"{inner}.data[{i}][{j}]", f"column {name!r} has dtype {dtype}, but holds "
                            f"{vals[i]!r:.80}.")
        if dtype == "object":
            arr = np.fromiter(vals, dtype=object, count=n)
            if types & {list, dict}:
                for k in np.flatnonzero([type(v) in (list, dict) for v in vals]):
                    arr[k] = self.plain(vals[k], f"{inner}.data[{k}][{j}]")
            arr[pd.isnull(arr)] = None  # as pandapower does for object columns
            return arr
        try:
            if dtype[0].isupper() or dtype == "boolean":  # pandas nullable dtypes
                return pd.array(list(vals), dtype=dtype)
            return np.array(vals, dtype=np.dtype(dtype)) if n else np.empty(0, dtype=np.dtype(dtype))
        except (OverflowError, ValueError, TypeError) as exc:
            raise self.fail(f"{inner}.data[*][{j}]", f"column {name!r} is not {dtype}: {exc}.") from None

    def plain(self, o: Any, path: str) -> Any:
        """A nested cell value: lists and objects of plain values only (no object references)."""
        if isinstance(o, list):
            return [self.plain(v, f"{path}[{i}]") for i, v in enumerate(o)]
        if isinstance(o, dict):
            if _is_ref(o):
                raise self.refuse(o, path, " inside a table cell")
            return {k: self.plain(v, f"{path}.{k}") for k, v in o.items()}
        return o
