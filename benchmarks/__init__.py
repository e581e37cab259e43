"""Benchmarks of nodalopt against pandapower rundcopp and PyPSA + HiGHS (``python -m benchmarks``)."""
