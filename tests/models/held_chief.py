"""Test model: the probe model, with a chief that can be held down.

While the file named by $HOLD_CHIEF_WHILE_EXISTS exists, a chief task that starts waits at import, before
its server is up: from the cluster's point of view the chief is down, for exactly as long as the test says.
"""

import json
import os
import time

from models.probe import build  # noqa: F401  (the model itself; its flags come with it)

HOLD_FILE = os.environ.get("HOLD_CHIEF_WHILE_EXISTS", "")
if HOLD_FILE and json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("type") == "chief":
    while os.path.exists(HOLD_FILE):
        time.sleep(0.1)
