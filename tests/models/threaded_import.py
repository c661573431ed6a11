"""Test model module that starts a thread when it is imported (as one that prefetches data might): a warm
process that imported it must not fork (the thread would be lost in the child, with any lock it held)."""

import threading
import time

from launcher.models.linear import build  # noqa: F401

threading.Thread(target=lambda: time.sleep(3600), name="prefetch", daemon=True).start()
