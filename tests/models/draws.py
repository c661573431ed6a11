"""Test model: the linear model, and a draw from NumPy's global generator printed when it is built (a task
forked from a warm process must not draw what its siblings drew)."""

import numpy as np

from launcher.models import linear


def build(mode):
    print(f"numpy draw: {np.random.randint(2 ** 62)}", flush=True)
    return linear.build(mode)
