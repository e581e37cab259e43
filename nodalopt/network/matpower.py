"""MATPOWER ``.m`` case (e.g. PGLib) -> :class:`NetworkArrays`, without pandapower.

The file is parsed as text by ``matpowercaseframes`` (no code is executed) and
compiled directly, so MATPOWER semantics survive exactly: ``RATE_A = 0`` means
unlimited, ``ANGMIN/ANGMAX`` are kept, taps and shifts are available to either
DC convention.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from . import validate as V
from .arrays import DISPATCHABLE, NetworkArrays
from .costs import expand_pwl

MAX_CASE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True, eq=False)
class MatpowerCase:
    """A parsed MATPOWER case: numeric tables as they stand in the file.

    Use :func:`nodalopt.solve` on it directly, or :meth:`to_pandapower` to get a
    pandapower net (pandapower's converter is lossy: angle limits are dropped
    and ``RATE_A = 0`` transformers get a rating).
    """

    name: str
    path: str
    base_mva: float
    bus: np.ndarray
    gen: np.ndarray
    branch: np.ndarray
    gencost: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def to_pandapower(self, f_hz: float = 50.0, **kwargs: Any) -> Any:
        """The case as a pandapower net, through pandapower's own MATPOWER converter.

        The tables parsed here go to ``pandapower.converter.pypower.from_ppc`` (the
        converter behind ``pandapower.converter.matpower.from_mpc``), so the file is not
        read twice and an in-memory case converts too.

        Parameters
        ----------
        f_hz : float
            Network frequency; MATPOWER files carry none and 50 Hz is ``from_mpc``'s
            documented default.  It only sets line capacitances (not the DC model).
        **kwargs
            Passed to ``from_ppc`` (e.g. ``validate_conversion=True``).

        Returns
        -------
        pandapowerNet
            Lossy where pandapower's converter is: angle limits are dropped and
            ``RATE_A = 0`` transformers get a rating.
        """
        try:
            from pandapower.converter.pypower import from_ppc
        except ImportError as exc:  # pragma: no cover - pandapower is a dependency
            raise ImportError("MatpowerCase.to_pandapower needs pandapower (pip install pandapower).") from exc

        ppc = {"version": "2", "baseMVA": float(self.base_mva), "bus": self.bus.copy(), "gen": self.gen.copy(),
               "branch": self.branch.copy(), "gencost": self.gencost.copy()}
        net = from_ppc(ppc, f_hz=f_hz, **kwargs)
        net.name = self.name
        return net


_BLOCK_RE = re.compile(r"^\s*mpc\.(\w+)\s*=\s*\[(.*)$")
#: fewest columns each table needs (MATPOWER's caseformat: the columns nodalopt reads)
_MIN_COLS = {"bus": 13, "gen": 10, "branch": 11, "gencost": 5}


def _rows(path: Path, text: str) -> dict[str, list[tuple[int, list[str]]]]:
    """The numeric matrices of a MATPOWER file: ``{name: [(line, tokens), ...]}`` (text only).

    Refuses with the file and line: a matrix that is never closed (a truncated file), a row
    whose number of values differs from the matrix's first row, a value that is not a number,
    and the tables nodalopt reads with fewer columns than MATPOWER's format requires.
    """
    out: dict[str, list[tuple[int, list[str]]]] = {}
    name: str | None = None
    start = 0
    for ln, line in enumerate(text.splitlines(), start=1):
        code = line.split("%", 1)[0]
        if name is None:
            m = _BLOCK_RE.match(code)
            if not m:
                continue
            name, start, code = m.group(1), ln, m.group(2)
            out[name] = []
        body, closed = code, False
        if "]" in code:
            body, closed = code.split("]", 1)[0], True
        for piece in body.split(";"):
            toks = [t for t in re.split(r"[\s,]+", piece.strip()) if t]
            if toks:
                out[name].append((ln, toks))
        if closed:
            rows = out[name]
            if name in _MIN_COLS or rows and all(_is_number(t) for t in rows[0][1]):
                _check_matrix(path, name, rows)
            name = None
    if name is not None:
        raise InputError(f"{path}, line {start}: mpc.{name} = [ is never closed with '];' (the file ends at "
                         f"line {text.count(chr(10)) + 1}); is the file truncated?")
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _check_matrix(path: Path, name: str, rows: list[tuple[int, list[str]]]) -> None:
    if not rows:
        return
    width = len(rows[0][1])
    need = _MIN_COLS.get(name, 0)
    if name != "gencost" and width < need:
        raise InputError(f"{path}, line {rows[0][0]}: mpc.{name} row has {width} values; MATPOWER's format "
                         f"needs at least {need} columns.")
    for ln, toks in rows:
        if len(toks) != width:
            raise InputError(f"{path}, line {ln}: mpc.{name} row has {len(toks)} values where the first row "
                             f"(line {rows[0][0]}) has {width}; every row of a matrix needs the same number "
                             "of columns (truncated or mistyped row?).")
        bad = [t for t in toks if not _is_number(t)]
        if bad:
            raise InputError(f"{path}, line {ln}: mpc.{name} value {bad[0][:30]!r} is not a number.")
    if name == "gencost":
        for ln, toks in rows:
            model, ncost = float(toks[0]), float(toks[3]) if len(toks) > 3 else -1.0
            if ncost < 1 or ncost != int(ncost):
                got = toks[3] if len(toks) > 3 else "missing"
                raise InputError(f"{path}, line {ln}: mpc.gencost NCOST (column 4) is {got}; it must be a "
                                 "positive integer.")
            n = int(ncost) * (2 if model == 1 else 1)
            if len(toks) < 4 + n:
                what = f"{int(ncost)} (x, y) points" if model == 1 else f"{int(ncost)} coefficients"
                raise InputError(f"{path}, line {ln}: mpc.gencost NCOST = {int(ncost)} announces {what} but the "
                                 f"row has {len(toks) - 4} value(s) after column 4; fix NCOST or the row.")


def read_matpower(path: str | os.PathLike[str]) -> MatpowerCase:
    """Parse a MATPOWER ``.m`` file (text only; nothing is evaluated).

    Errors name the file and the line: a truncated matrix, a row of the wrong width, a value
    that is not a number, an ``NCOST`` that does not match its row.
    """
    from matpowercaseframes import CaseFrames

    p = Path(path)
    if p.exists() and not p.is_file():
        raise InputError(f"{p}: not a regular file; give a MATPOWER .m file.")
    if not p.is_file():
        raise InputError(f"{p}: no such MATPOWER file.")
    if p.stat().st_size > MAX_CASE_BYTES:
        raise InputError(f"{p}: file is {p.stat().st_size} bytes, over the {MAX_CASE_BYTES}-byte limit.")
    raw = p.read_bytes()[: MAX_CASE_BYTES + 1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{p}, line {line}: byte 0x{raw[exc.start]:02x} is not "
                         "valid UTF-8; save the file as UTF-8 (or ASCII).") from None
    rows = _rows(p, text)
    try:
        cf = CaseFrames(str(p))
    except Exception as exc:  # the parser raises assorted errors on bad files
        raise InputError(f"{p}: cannot parse as a MATPOWER case ({type(exc).__name__}: {exc}).") from exc
    attrs = set(getattr(cf, "attributes", []))
    for need in ("bus", "gen", "branch", "baseMVA"):
        if need not in attrs:
            raise InputError(f"{p}: MATPOWER case has no 'mpc.{need}'.")
    if "gencost" not in attrs:
        raise InputError(f"{p}: missing cost data: the case has no 'mpc.gencost'; add one row per generator.")
    if "dcline" in attrs and len(cf.dcline):
        raise InputError(f"{p}: 'mpc.dcline' is not supported by the DC model yet.")
    try:
        tables = {k: getattr(cf, k).to_numpy(float) for k in ("bus", "gen", "branch", "gencost")}
    except (ValueError, TypeError) as exc:
        raise InputError(f"{p}: a MATPOWER matrix is not numeric ({exc}).") from None
    for k, arr in tables.items():
        got = rows.get(k, [])
        if got and arr.shape[0] != len(got):
            raise InputError(f"{p}, line {got[0][0]}: mpc.{k} has {len(got)} rows in the text but the parser "
                             f"read {arr.shape[0]}; check the rows' separators (';' or line ends).")
    return MatpowerCase(name=p.stem, path=str(p), base_mva=float(cf.baseMVA),
                        bus=tables["bus"], gen=tables["gen"], branch=tables["branch"], gencost=tables["gencost"],
                        extra={"row_lines": {k: [ln for ln, _ in v] for k, v in rows.items()}})


def _gencost(gc: np.ndarray, names: np.ndarray, where: str
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], list[tuple[np.ndarray, np.ndarray]]]:
    n = gc.shape[0]
    c0, c1, c2 = np.zeros(n), np.zeros(n), np.zeros(n)
    model = gc[:, 0].astype(int)
    ncost = gc[:, 3].astype(int)
    coef = gc[:, 4:]
    poly = model == 2
    if (poly & (ncost > 3)).any():
        raise InputError(f"{where}: polynomial costs above quadratic for {V._list(names, poly & (ncost > 3))}.")
    for k in (1, 2, 3):  # vectorized per NCOST value
        m = poly & (ncost == k)
        if m.any():
            c = coef[m, :k]
            V.check_finite(c, names[m], "gencost coefficients", where)
            if k == 3:
                c2[m], c1[m], c0[m] = c[:, 0], c[:, 1], c[:, 2]
            elif k == 2:
                c1[m], c0[m] = c[:, 0], c[:, 1]
            else:
                c0[m] = c[:, 0]
    pwl_pos: list[int] = []
    pwl_seg: list[tuple[np.ndarray, np.ndarray]] = []
    for g in np.flatnonzero(model == 1):
        pts = coef[g, : 2 * ncost[g]].reshape(-1, 2)
        x, y = pts[:, 0], pts[:, 1]
        if not np.isfinite(pts).all() or np.any(np.diff(x) <= 0):
            raise InputError(f"{where}: piecewise-linear cost of {names[g]} has non-increasing x points.")
        slope = np.diff(y) / np.diff(x)
        if np.any(np.diff(slope) < -1e-12):
            raise InputError(f"{where}: piecewise-linear cost of {names[g]} is not convex.")
        pwl_pos.append(int(g))
        pwl_seg.append((slope, y[:-1] - slope * x[:-1]))
    bad = ~np.isin(model, (1, 2))
    if bad.any():
        raise InputError(f"{where}: gencost MODEL must be 1 or 2 for {V._list(names, bad)}.")
    if (c2 < 0).any():
        raise InputError(f"{where}: negative quadratic cost for {V._list(names, c2 < 0)}; costs must be convex.")
    return c0, c1, c2, pwl_pos, pwl_seg


_M64 = (1 << 64) - 1


def _rotl64(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    return k ^ (k >> 33)


def _julia_string_hash(s: str) -> int:
    """Julia's ``hash(::String)`` on 64-bit (Julia 1.x up to 1.12): MurmurHash3_x64_128, high word."""
    seed = 0x71E729FD56419C81  # memhash_seed; hash(s) = hash(s, 0)
    data = s.encode()
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = seed & 0xFFFFFFFF
    nb = len(data) // 16
    for i in range(nb):
        k1 = int.from_bytes(data[16 * i:16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8:16 * i + 16], "little")
        h1 ^= (_rotl64((k1 * c1) & _M64, 31) * c2) & _M64
        h1 = (_rotl64(h1, 27) + h2) & _M64
        h1 = (h1 * 5 + 0x52DCE729) & _M64
        h2 ^= (_rotl64((k2 * c2) & _M64, 33) * c1) & _M64
        h2 = (_rotl64(h2, 31) + h1) & _M64
        h2 = (h2 * 5 + 0x38495AB5) & _M64
    tail = data[16 * nb:]
    if len(tail) > 8:
        h2 ^= (_rotl64((int.from_bytes(tail[8:], "little") * c2) & _M64, 33) * c1) & _M64
    if tail:
        h1 ^= (_rotl64((int.from_bytes(tail[:8], "little") * c1) & _M64, 31) * c2) & _M64
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1, h2 = _fmix64(h1), _fmix64(h2)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    return (h2 + seed) & _M64


def _julia_dict_order(keys: list[str]) -> list[int]:
    """Positions of ``keys`` in the iteration order of a Julia ``Dict`` they were inserted into in turn.

    Emulates Base.Dict (open addressing, linear probing, growth to 4x the count past 2/3 load, a
    rehash to 4x the size after a probe run of ``max(16, size >> 6)``).  PowerModels keeps its
    components in such dicts (keys ``"1"``, ``"2"``, ...), so this is the order its data checks
    visit them in.
    """
    hashes = [_julia_string_hash(k) for k in keys]
    size, slots, count, maxprobe = 16, [-1] * 16, 0, 0

    def rehash(newsize: int) -> None:
        nonlocal size, slots, maxprobe
        newsize = max(16, 1 << (newsize - 1).bit_length())
        new, maxprobe = [-1] * newsize, 0
        for j in slots:
            if j >= 0:
                i0 = i = hashes[j] & (newsize - 1)
                while new[i] >= 0:
                    i = (i + 1) & (newsize - 1)
                maxprobe = max(maxprobe, (i - i0) & (newsize - 1))
                new[i] = j
        size, slots = newsize, new

    for j in range(len(keys)):
        while True:
            i, probe = hashes[j] & (size - 1), 0
            while slots[i] >= 0 and probe < max(maxprobe + 1, 16, size >> 6):
                i, probe = (i + 1) & (size - 1), probe + 1
            if slots[i] < 0:
                maxprobe = max(maxprobe, probe)
                break
            rehash(count * 2 if count > 64000 else size * 4)
        slots[i] = j
        count += 1
        if count * 3 > size * 2:
            rehash(count * 2 if count > 64000 else count * 4)
    return [j for j in slots if j >= 0]


def _powermodels_reversed(branch: np.ndarray) -> np.ndarray:
    """Rows of ``mpc.branch`` that PowerModels' ``correct_branch_directions!`` reverses.

    Visiting the branches in its dict order, PowerModels flips a branch whose opposite orientation
    it has already seen, and rescales the flipped branch's ``br_r`` and ``br_x`` by ``tap^2``
    (``tap^2 (r + jx)`` with ``tap -> 1/tap``; taps of 0 are read as 1).  DCPPowerModel ignores taps, so
    a flipped transformer's susceptance becomes ``b / tap^2``.  Which of two opposite parallel
    branches is flipped depends on that order (the branch keyed first stays).
    """
    ft = branch[:, :2].astype(np.int64)
    fwd = {(int(a), int(b)) for a, b in ft}
    anti = np.array([a != b and (b, a) in fwd for a, b in fwd], dtype=bool)
    out = np.zeros(ft.shape[0], dtype=bool)
    if not anti.any():
        return out
    seen: set[tuple[int, int]] = set()
    for i in _julia_dict_order([str(i + 1) for i in range(ft.shape[0])]):
        a, b = int(ft[i, 0]), int(ft[i, 1])
        if (b, a) in seen:
            out[i] = True
        else:
            seen.add((a, b))
    return out


def from_matpower(case: MatpowerCase, dc_model: str = "pandapower") -> NetworkArrays:
    """Compile a :class:`MatpowerCase` (see :func:`from_pandapower` for ``dc_model``)."""
    if dc_model == "matpower":
        dc_model = "pandapower"
    if dc_model not in ("pandapower", "pglib"):
        raise InputError(f"dc_model={dc_model!r} is not one of 'pandapower', 'pglib'.")
    where = case.path
    bus, gen, br = case.bus, case.gen, case.branch
    bus_id = bus[:, 0].astype(np.int64)
    V.check_unique(bus_id, "BUS_I", f"{where} mpc.bus")
    live_bus = bus[:, 1] != 4
    n_node = bus.shape[0]
    node_label = np.array([f"bus:{b}" for b in bus_id], dtype=object)

    # branches
    flip = _powermodels_reversed(br) if dc_model == "pglib" else np.zeros(br.shape[0], dtype=bool)
    on = (br[:, 10] > 0)
    br, flip = br[on], flip[on]
    br_names = np.array([f"branch:{i}" for i in np.flatnonzero(on)], dtype=object)
    f = V.check_known_ids(br[:, 0].astype(np.int64), bus_id, br_names, "F_BUS", f"{where} mpc.branch")
    t = V.check_known_ids(br[:, 1].astype(np.int64), bus_id, br_names, "T_BUS", f"{where} mpc.branch")
    keep = live_bus[f] & live_bus[t]
    br, br_names, f, t, flip = br[keep], br_names[keep], f[keep], t[keep], flip[keep]
    V.check_self_loops(f, t, br_names, f"{where} mpc.branch")
    r, x = br[:, 2], br[:, 3]
    if dc_model == "pandapower":
        V.check_reactance(x, br_names, "BR_X", f"{where} mpc.branch")
        tap = np.where(br[:, 8] == 0, 1.0, br[:, 8])
        b_pu = 1.0 / (x * tap)
        shift = np.deg2rad(br[:, 9])
        angmin = np.full(br.shape[0], -np.inf)
        angmax = np.full(br.shape[0], np.inf)
    else:
        # as PowerModels' parser: a branch it flips to match an opposite parallel one has r, x scaled by tap^2
        scale = np.where(flip, np.where(br[:, 8] <= 0, 1.0, br[:, 8]) ** 2, 1.0)
        r, x = r * scale, x * scale
        z2 = r * r + x * x
        V.check_reactance(np.where(z2 == 0, 0.0, np.where(x == 0, 1.0, x)), br_names, "BR_X", f"{where} mpc.branch")
        b_pu = x / z2
        shift = np.zeros(br.shape[0])
        amin, amax = br[:, 11], br[:, 12]
        none = (amin <= -360) & (amax >= 360) | (amin == 0) & (amax == 0)
        angmin = np.where(none | (amin <= -360), -np.inf, np.deg2rad(amin))
        angmax = np.where(none | (amax >= 360), np.inf, np.deg2rad(amax))
    V.check_finite(br[:, 5], br_names, "RATE_A", f"{where} mpc.branch")
    if (br[:, 5] < 0).any():
        V.check_positive(br[:, 5], br_names, "RATE_A", f"{where} mpc.branch", strict=False)
    rate = np.where(br[:, 5] > 0, br[:, 5], np.inf)  # MATPOWER: 0 = unlimited

    # generators
    gon = (gen[:, 7] > 0)
    g_names_all = np.array([f"gen:{i}" for i in range(gen.shape[0])], dtype=object)
    if case.gencost.shape[0] < gen.shape[0]:
        raise InputError(f"{where}: missing cost data: mpc.gencost has {case.gencost.shape[0]} rows for "
                         f"{gen.shape[0]} generators.")
    gc = case.gencost[: gen.shape[0]][gon]
    gen = gen[gon]
    g_names = g_names_all[gon]
    g_node = V.check_known_ids(gen[:, 0].astype(np.int64), bus_id, g_names, "GEN_BUS", f"{where} mpc.gen")
    alive = live_bus[g_node]
    gen, gc, g_names, g_node = gen[alive], gc[alive], g_names[alive], g_node[alive]
    pmax, pmin = gen[:, 8], gen[:, 9]
    V.check_finite(pmax, g_names, "PMAX", f"{where} mpc.gen")
    V.check_finite(pmin, g_names, "PMIN", f"{where} mpc.gen")
    V.check_bounds_order(pmin, pmax, g_names, "PMIN", "PMAX", f"{where} mpc.gen")
    c0, c1, c2, pwl_pos, pwl_seg = _gencost(gc, g_names, f"{where} mpc.gencost")

    # loads: one per bus with demand
    pd_ = np.where(live_bus, bus[:, 2], 0.0)
    V.check_finite(pd_, node_label, "PD", f"{where} mpc.bus")
    has_load = pd_ != 0
    load_node = np.flatnonzero(has_load)
    fixed = np.where(live_bus, bus[:, 4], 0.0)  # GS, MW at 1 pu
    V.check_finite(fixed, node_label, "GS", f"{where} mpc.bus")

    conn = b_pu != 0  # a branch with b = 0 carries no DC flow
    node_island = V.islands(n_node, f[conn], t[conn])
    ref_cand = np.flatnonzero((bus[:, 1] == 3) & live_bus)
    ref_node, live = V.choose_references(node_island, ref_cand, g_node, load_node, pd_[load_node],
                                         node_label[load_node], fixed, node_label, where)
    pub = live_bus & live[node_island]
    pwl_gen, pwl_slope, pwl_icpt = expand_pwl(np.asarray(pwl_pos, np.int64), pwl_seg)
    n_g = gen.shape[0]
    arrays = NetworkArrays(
        name=case.name, base_mva=case.base_mva, n_node=n_node,
        ref_node=ref_node, node_island=node_island, node_fixed_demand=fixed,
        bus_ids=bus_id[pub], bus_node=np.flatnonzero(pub),
        br_names=br_names, br_f=f, br_t=t, br_b=b_pu, br_shift=shift, br_rate=rate,
        br_angmin=angmin, br_angmax=angmax,
        gen_names=g_names, gen_node=g_node, gen_kind=np.full(n_g, DISPATCHABLE, np.int8),
        gen_pmin=pmin, gen_pmax=pmax, gen_c0=c0, gen_c1=c1, gen_c2=c2,
        gen_ramp_up=np.full(n_g, np.inf), gen_ramp_down=np.full(n_g, np.inf),
        pwl_gen=pwl_gen, pwl_slope=pwl_slope, pwl_intercept=pwl_icpt,
        load_names=np.array([f"load:{b}" for b in bus_id[load_node]], dtype=object),
        load_node=load_node, load_p=pd_[load_node],
        meta={"source": case.path, "dc_model": dc_model},
    )
    return V.check_susceptance(arrays, f"{where} mpc.branch")
