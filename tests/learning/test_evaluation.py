"""fieldlearn.learning.evaluation: an evaluation of the latest models and its summaries."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fieldlearn.learning.evaluation import Evaluation


def test_evaluation_summaries():
    acc = np.array([[0.9, 0.1, np.nan], [0.2, 0.8, 0.5], [np.nan, 0.7, np.nan], [np.nan] * 3])
    ev = Evaluation(10, 9.0, acc, np.array([0, 1, 1, 0]), np.array([True, True, False, False]))
    # mover 0 has a NaN area (no evaluation there): only complete rows count towards CAcc
    assert ev.cacc() == pytest.approx(1.5)
    assert ev.own() == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    assert ev.own(np.array([2])) == pytest.approx(0.7)
    per = ev.per_region()
    assert per[0] == pytest.approx(0.9) and per[1] == pytest.approx(0.75) and math.isnan(per[2])


def test_global_accuracy_weighs_each_region_by_its_evaluation_set():
    acc = np.array([[1.0, 0.5], [0.0, 1.0], [np.nan, 1.0]])
    ev = Evaluation(5, 4.0, acc, np.array([0, 1, 1]), np.zeros(3, bool), sizes=np.array([30.0, 10.0]))
    assert ev.global_per_device()[:2].tolist() == [(30 + 5) / 40, 10 / 40] and math.isnan(ev.global_per_device()[2])
    assert ev.global_accuracy() == pytest.approx((35 / 40 + 10 / 40) / 2)
