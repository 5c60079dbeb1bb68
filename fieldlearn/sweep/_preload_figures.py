"""Preloaded by the local pool's fork server when the runs draw figures: matplotlib (Agg) and the figure code."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.figure  # noqa: E402,F401
from matplotlib.backends import backend_agg  # noqa: E402,F401

from fieldlearn.sim import figures  # noqa: E402,F401
