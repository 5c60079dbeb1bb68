"""Sweep tests (a package, so that test_main.py does not clash with tests/sim/test_main.py)."""
