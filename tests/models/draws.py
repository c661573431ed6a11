"""Test model: the linear model, printing when it is built what a task forked from a warm process could
wrongly share with its siblings or its warm process: a draw from NumPy's global generator (it must not draw
what its siblings drew), and the garbage collector's state (the imports' objects frozen, the collector on)."""

import gc

import numpy as np

from launcher.models import linear


def build(mode):
    print(f"numpy draw: {np.random.randint(2 ** 62)}", flush=True)
    print(f"gc: enabled={gc.isenabled()} frozen={gc.get_freeze_count()}", flush=True)
    return linear.build(mode)
