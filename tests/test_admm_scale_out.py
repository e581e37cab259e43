"""ADMM that scales out: feeder state resident where it is solved, small messages, exact recovery."""

from __future__ import annotations

import os
import signal

import numpy as np
import pandapower as pp
import pytest

import nodalopt
from nodalopt.admm import feeder_qp as FQ
from nodalopt.admm.coordinator import ADMM, ADMMSettings, _psub_cols, _psub_hessian_pos
from nodalopt.admm.resident import ChunkState
from nodalopt.distribution import TDNetwork
from nodalopt.distribution.examples import case33bw_der, ev_fleet

HOURS = 4


def _td() -> TDNetwork:
    """case9 with a binding line, two EV feeders and one with a DG and a binding 0.95 pu voltage limit."""
    net = nodalopt.load_case("case9")
    net.line.loc[1, "max_i_ka"] = 0.03
    td = TDNetwork(net)
    f = case33bw_der()
    for k in range(2):
        td.add_feeder(f"d{k}", f, at_bus=[4, 6][k], evs=ev_fleet(energy_mwh=0.1, arrival=1, departure=4))
    g = case33bw_der(battery=False)
    pp.create_sgen(g, 17, p_mw=0.0, min_p_mw=0.0, max_p_mw=1.0, controllable=True, name="DG 17")
    pp.create_poly_cost(g, len(g.sgen) - 1, "sgen", cp1_eur_per_mw=20.0, cp2_eur_per_mw2=30.0)
    td.add_feeder("v", g, at_bus=6, vm_min_pu=0.95)
    return td


def test_chunk_replayed_from_static_data_is_bit_identical() -> None:
    """A chunk rebuilt from its install data and replayed messages is in exactly the lost chunk's state."""
    m = ADMM(_td(), ADMMSettings(), hours=HOURS)
    m._fseries = m._feeder_series(HOURS, True)
    from nodalopt.distribution import lindistflow as LD

    m._lt = LD.LossTerms.zero(m.fo.n_branch, HOURS)
    g = FQ.groups(m.fo)[0]
    inp = m._feeder_inputs()
    target = np.full((g.members.size, HOURS), 0.5)
    b = FQ.build_batch(g, m.fo, HOURS, m.dt, m._lt, rho=5.0, target=target, **inp)
    cols, pos = _psub_cols(g, HOURS), _psub_hessian_pos(g, b, HOURS)
    st = m.settings.qp
    rng = np.random.default_rng(0)
    ops = []
    for k in range(6):
        if k == 3:
            ops.append(("P", 10.0))
        ops.append(("q", -5.0 * (target + rng.normal(scale=0.2, size=target.shape))))

    def run(batch: object, upto: int) -> ChunkState:
        c = ChunkState(batch, st, cols, pos)  # type: ignore[arg-type]
        for kind, val in ops[:upto]:
            c.refactorize(val) if kind == "P" else c.step(val)
        return c

    p0 = b.P_data[:, pos].copy()
    live = run(FQ.build_batch(g, m.fo, HOURS, m.dt, m._lt, rho=5.0, target=target, **inp), len(ops))
    b.P_data[:, pos] = p0
    again = run(b, len(ops))
    r1, r2 = live.result(), again.result()
    b.P_data[:, pos] = p0
    assert not np.array_equal(run(b, len(ops) - 1).result().x, r1.x)  # the last message matters
    np.testing.assert_array_equal(r1.x, r2.x)
    np.testing.assert_array_equal(r1.y, r2.y)
    np.testing.assert_array_equal(live.f.rho, again.f.rho)


@pytest.fixture(scope="module")
def reference() -> object:
    return ADMM(_td(), ADMMSettings(max_iter=3000), hours=HOURS).solve()


def test_dask_two_workers_killed_worker_bit_identical_prices_small_messages(reference: object) -> None:
    """2-worker LocalCluster, one worker killed at iteration 5: the lost chunks are rebuilt on a live worker
    from their static data and replayed; prices and iterations are bit-identical to the in-process run, and
    each iteration moves only the substation columns (T numbers per feeder each way and a status)."""
    pytest.importorskip("dask.distributed")
    ref = reference
    killed: list[int] = []

    def kill_one(it: int, admm: ADMM) -> None:
        if it == 5 and not killed:
            pids = admm._exec.client.run(os.getpid)
            pid = sorted(pids.values())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    ds = ADMM(_td(), ADMMSettings(max_iter=3000, callback=kill_one), executor="dask", workers=2,
              hours=HOURS).solve()
    assert killed
    a = ds.attrs
    assert a["admm_converged"] == 1 and a["executor_reinstalls"] >= 1
    assert a["admm_iterations"] == ref.attrs["admm_iterations"]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(ds.lmp.values, ref.lmp.values)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(ds.dlmp.values, ref.dlmp.values)  # type: ignore[attr-defined]
    assert a["objective"] == ref.attrs["objective"]  # type: ignore[attr-defined]
    # per iteration and feeder: q columns in, x columns out (T floats each), a status, a few penalty changes
    per = a["executor_bytes_per_iteration_per_feeder"]
    assert 2 * 8 * HOURS + 8 <= per <= 2 * 8 * HOURS + 8 + 8, per
    # the static data went out once per new matrices (a handful of loss updates), far more than a step
    assert a["executor_bytes_install"] > 100 * per * 3


_PROBE = """
import json
from nodalopt.admm import kernels
from nodalopt.admm.warmup import warm_kernels
warm_kernels()
hits = misses = 0
for name in dir(kernels):
    f = getattr(kernels, name)
    if hasattr(f, "stats") and hasattr(f, "signatures"):
        hits += sum(f.stats.cache_hits.values())
        misses += sum(f.stats.cache_misses.values())
print(json.dumps({"hits": hits, "misses": misses}))
"""


@pytest.mark.slow  # a cold numba compile: about 30 s on an idle core, 2 minutes on this shared machine
def test_kernels_compile_once_per_machine(tmp_path: object) -> None:
    """A second process with the same NUMBA_CACHE_DIR loads every kernel the warm-up uses from the cache."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": os.getcwd()}
    runs = [json.loads(subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                                      check=True, timeout=600).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert runs[0]["misses"] > 0  # the first process compiled (and wrote the cache)
    assert runs[1]["misses"] == 0 and runs[1]["hits"] > 0  # the second only loaded
