"""The pure parts of hang and failure reporting, on real text: TensorFlow's and Python's own output."""

import os
import socket
import subprocess
import sys

import pytest

from launcher.cluster.spec import TaskId
from launcher.launch import console_filter, diagnosis, reachability, root_cause, stacks, watchdog

CHIEF, WORKER, PS = TaskId("chief", 0), TaskId("worker", 0), TaskId("ps", 0)

# As a chief's log shows a checkpoint save on a full disk (abridged from a real run).
DISK_FULL = """\
W1127 11:23:25.761703 139883493170048 deprecation.py:50] From /venv/site-packages/tensorflow/python/training/saver.py:1068: remove_checkpoint (from tensorflow.python.checkpoint.checkpoint_management) is deprecated and will be removed in a future version.
Instructions for updating:
Use standard file APIs to delete files with this prefix.
Traceback (most recent call last):
  File "/venv/site-packages/tensorflow/python/client/session.py", line 1407, in _do_call
    return fn(*args)
tensorflow.python.framework.errors_impl.ResourceExhaustedError: /runs/m/model.ckpt-20_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; No space left on device
During handling of the above exception, another exception occurred:
Traceback (most recent call last):
  File "/venv/site-packages/tensorflow/python/training/saver.py", line 1250, in save
    sess.run(...)
tensorflow.python.framework.errors_impl.ResourceExhaustedError: /runs/m/model.ckpt-20_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; No space left on device
Original stack trace for 'save/SaveV2':
  File "/venv/site-packages/tensorflow/python/training/saver.py", line 300, in _AddShardedSaveOps
    return self._AddShardedSaveOpsForV2(filename_tensor, per_device)
""".splitlines()


def test_console_shows_the_error_once_and_no_traceback_or_deprecation():
    f = console_filter.LineFilter()
    shown = [line for line in DISK_FULL if f.show(line)]
    assert shown == [DISK_FULL[6]], shown


# The same on TensorFlow 2.21 as a loaded run once printed it (abridged): the op's error, whose message
# names the task ("From /job:...:") on a line of its own, then the "Graph execution error" that repeats it
# after the frames where the node was defined.
DISK_FULL_GRAPH_ERROR = """\
Traceback (most recent call last):
  File "/venv/site-packages/tensorflow/python/client/session.py", line 1407, in _do_call
    return fn(*args)
tensorflow.python.framework.errors_impl.ResourceExhaustedError: From /job:chief/replica:0/task:0:
/runs/m/model.ckpt-20_temp/part-00000-of-00001.data-00000-of-00001.tempstate2; No space left on device
\t [[{{node save/SaveV2}}]]
Hint: If you want to see a list of allocated tensors when OOM happens, add report_tensor_allocations_upon_oom to RunOptions for current allocation info. This isn't available when running in Eager mode.

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/launcher/task/training.py", line 67, in train
    session.run(model.train_op)
tensorflow.python.framework.errors_impl.ResourceExhaustedError: Graph execution error:

Detected at node 'save/SaveV2' defined at (most recent call last):
    File "<frozen runpy>", line 198, in _run_module_as_main
    File "/launcher/task/training.py", line 67, in train
Node: 'save/SaveV2'
From /job:chief/replica:0/task:0:
/runs/m/model.ckpt-20_temp/part-00000-of-00001.data-00000-of-00001.tempstate2; No space left on device
\t [[{{node save/SaveV2}}]]
Hint: If you want to see a list of allocated tensors when OOM happens, add report_tensor_allocations_upon_oom to RunOptions for current allocation info. This isn't available when running in Eager mode.
""".splitlines()


def test_console_shows_a_graph_execution_error_s_repeated_message_once():
    f = console_filter.LineFilter()
    shown = [line for line in DISK_FULL_GRAPH_ERROR if f.show(line)]
    assert sum("No space left on device" in line for line in shown) == 1, shown
    assert not [line for line in shown if line.startswith("    File ") or line.startswith("Detected at")], shown
    assert "tensorflow.python.framework.errors_impl.ResourceExhaustedError: Graph execution error:" in shown


def test_root_cause_names_no_space_and_the_path():
    cause = root_cause.find(DISK_FULL, 1)
    assert cause.startswith("no space left on device writing /runs/m/model.ckpt-20_temp/"), cause


def test_root_cause_names_the_users_frame_of_a_real_traceback(tmp_path):
    user = tmp_path / "my_model.py"
    user.write_text("import json\n\ndef build():\n    json.loads('{')\n\nbuild()\n")
    out = subprocess.run([sys.executable, str(user)], capture_output=True, text=True)
    cause = root_cause.find(out.stderr.splitlines(), 1)
    assert cause.startswith("json.decoder.JSONDecodeError: Expecting property name") or \
        cause.startswith("JSONDecodeError: Expecting property name"), cause
    assert f"at {user}:4 in build: json.loads('{{')" in cause, cause


def test_telling_frame_skips_python_tensorflow_and_the_launcher():
    dump = ['Thread 0x7f (most recent call first):',
            '  File "/usr/lib/python3.11/threading.py", line 327 in wait',
            '  File "/work/tests/models/hang.py", line 31 in blocked_input',
            '  File "/venv/lib/python3.11/site-packages/tensorflow/python/ops/script_ops.py", line 269 in __call__']
    assert stacks.telling_frame(dump) == "hang.py:31 in blocked_input"
    assert stacks.telling_frame(["    wait (threading.py:327)", "    next_input (hang.py:49)"]) == \
        "hang.py:49 in next_input"


def _alarm(quiet, no_step=None):
    silent = tuple(s for s in quiet if s.secs >= 15)
    return watchdog.Alarm(silent, tuple(quiet), no_step, 120, False)


def test_verdict_names_an_unreachable_ps_and_who_waits_for_it():
    alarm = _alarm([watchdog.Silence(CHIEF, 16, True), watchdog.Silence(WORKER, 16, True)], no_step=16)
    probes = [diagnosis.Probe(CHIEF, "starting", "S", "accepts", None, 16),
              diagnosis.Probe(WORKER, "starting", "S", "accepts", None, 16),
              diagnosis.Probe(PS, "serving", None, "refused", None, None)]
    found = diagnosis.explain(alarm, probes, {}, lambda t: "host-b:2222", 15)
    assert found.culprits == (PS,)
    assert found.verdict == ("hang: no global step for 16 s (at step 120); ps:0 does not accept connections at "
                             "host-b:2222; chief:0 and worker:0 wait in session creation for it")


def test_report_page_escapes_and_shows_moves_hangs_and_causes():
    from launcher.report import page, summary

    t0 = 1795777200.0
    run = {"started": "2026-11-27T11:00:00+00:00", "ended": "2026-11-27T11:01:40+00:00", "outcome": "failed",
           "exit_code": 1, "train_steps": 100, "global_step_series": [[t0, 0], [t0 + 50, 60]],
           "hangs": [{"detected": t0 + 30, "time": t0 + 31, "verdict": "hang: ps:0 <stopped>", "action": "restart",
                      "culprits": ["ps:0"], "stacks": {"ps:0": "logs/ps-0.log:12"}}],
           "tasks": [{"job": "worker", "index": 0, "restarts": 1, "attempts": [
               {"started": t0, "ended": t0 + 20, "exit_code": -9, "host": "10.0.0.2"},
               {"started": t0 + 21, "ended": t0 + 99, "exit_code": 1, "host": "10.0.0.3",
                "cause": "no space left on device writing /m/x", "moved": {"from": "10.0.0.2", "to": "10.0.0.3",
                                                                           "why": "node lost"}}]}]}
    from launcher.cluster import typed_json
    from launcher.launch import run_record

    run = typed_json.decode(run_record.Run, run)  # the report reads the typed record
    html_page = page.render([run], "/m")
    assert "hang: ps:0 &lt;stopped&gt;" in html_page and "<stopped>" not in html_page
    assert html_page.count('class="attempt ') == 2 and 'class="attempt failed"' in html_page
    assert 'class="move"' in html_page and "10.0.0.2 &rarr; 10.0.0.3 (node lost)" in html_page
    assert "no space left on device writing /m/x" in html_page and "logs/ps-0.log:12" in html_page
    text = summary.render([run])
    assert "hangs: 1" in text and "at +30s: hang: ps:0 <stopped> -> restart" in text
    assert "host moves: worker:0 10.0.0.2 -> 10.0.0.3" in text


def test_end_of_run_verdict_says_the_chief_waits_for_its_final_save():
    quiet = (watchdog.Silence(WORKER, 16, False),)
    alarm = watchdog.Alarm(quiet, quiet, None, 600, True)
    probes = [diagnosis.Probe(CHIEF, "training", "S", "accepts", 600, None),
              diagnosis.Probe(WORKER, "training", "T", "accepts", 410, 16)]
    found = diagnosis.explain(alarm, probes, {}, lambda t: "localhost:1", 15)
    assert found.culprits == (WORKER,)
    assert found.verdict == ("end of run: the chief has reached the final step; gave up waiting for the last report "
                             "of worker:0; worker:0 alive but stopped (SIGSTOP), no status for 16 s; chief:0 waits "
                             "for it before its final save")


def test_verdict_names_a_worker_whose_host_does_not_answer():
    alarm = _alarm([watchdog.Silence(CHIEF, 3, False), watchdog.Silence(WORKER, 17, False)])
    probes = [diagnosis.Probe(CHIEF, "training", "S", "accepts", 300, 3),
              diagnosis.Probe(WORKER, "training", None, "unreachable", 120, 17),
              diagnosis.Probe(PS, "serving", "S", "accepts", None, None)]
    found = diagnosis.explain(alarm, probes, {}, lambda t: "10.213.0.2:2222", 15)
    assert found.culprits == (WORKER,)
    assert found.verdict == ("hang: worker:0 is unreachable at 10.213.0.2:2222 (connections time out: its host is "
                             "cut off or down), no status for 17 s; chief:0 training normally")


@pytest.fixture
def cut_off_pid():
    """The pid of a process in a network namespace with nothing but loopback: a host cut off from the others."""
    holder = subprocess.Popen(["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec sleep 60"],
                              stdout=subprocess.PIPE, text=True)
    try:
        if holder.stdout.readline().strip() != "up":
            pytest.skip("cannot make a network namespace here (needs root and `ip`)")
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_reachability_tells_a_refusal_from_a_listening_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        assert reachability.check(f"127.0.0.1:{port}", None) == reachability.REFUSED
        sock.listen()
        assert reachability.check(f"127.0.0.1:{port}", None) == reachability.ACCEPTS


def test_reachability_tells_a_refusal_from_a_host_that_does_not_answer(cut_off_pid):
    assert reachability.check("10.213.9.9:2222", cut_off_pid, timeout_secs=1) == reachability.UNREACHABLE
    assert reachability.check("127.0.0.1:9", cut_off_pid) == reachability.REFUSED


def test_a_server_is_unreachable_only_when_no_peer_gets_through(cut_off_pid):
    # A peer on a cut-off host (a namespace with nothing but loopback) reaches nobody: its view alone must
    # not make a live server look cut off.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        here = f"127.0.0.1:{sock.getsockname()[1]}"
        assert reachability.check(here, cut_off_pid) == reachability.REFUSED  # its own loopback
        assert reachability.check_from_peers(here, None, [cut_off_pid, os.getpid()]) == reachability.ACCEPTS
    assert reachability.check_from_peers("10.213.9.9:2222", None, [cut_off_pid],
                                         timeout_secs=1) == reachability.UNREACHABLE


def test_a_server_that_is_gone_is_refused_whatever_its_peers_reach(cut_off_pid):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: nothing serves
        gone = f"127.0.0.1:{sock.getsockname()[1]}"
        # The only peer is one that reaches nobody: still, next to the server nothing listens.
        assert reachability.check_from_peers(gone, os.getpid(), [cut_off_pid]) == reachability.REFUSED
