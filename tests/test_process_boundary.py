"""The launcher process stays out of TensorFlow: checked on the import graph and on a real run's memory."""

import pathlib
import shutil
import signal
import subprocess
import sys

from conftest import REPO, logged_step, wait_for


def test_the_import_contract_holds():
    lint = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent))
    done = subprocess.run([lint], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 kept, 0 broken" in done.stdout


def test_a_training_launcher_has_no_tensorflow_in_memory(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", "1000000")
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 0, what="the chief's first logged step")
    maps = pathlib.Path(f"/proc/{launch.proc.pid}/maps").read_text()
    # The task programs (not the holder of the run's network namespace, which is no Python at all).
    tasks = [p for p in runner.leftovers() if p.pid != launch.proc.pid and "launcher.task" in p.cmdline()]
    assert tasks and all("tensorflow" in pathlib.Path(f"/proc/{p.pid}/maps").read_text() for p in tasks)
    assert "tensorflow" not in maps, [line for line in maps.splitlines() if "tensorflow" in line][:3]
    launch.proc.send_signal(signal.SIGTERM)
    assert launch.wait() == 143, launch.stderr
