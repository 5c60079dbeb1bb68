"""Imported once by the local pool's fork server, so that every run's fresh process starts with the simulator
already loaded instead of importing it again (one to two seconds each)."""
from fieldlearn.sim import runner  # noqa: F401
from fieldlearn.sweep import backends  # noqa: F401
