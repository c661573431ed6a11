"""A stand-in for the task program in supervisor tests: it behaves as its environment says, and no more.

STUB_PLAN (JSON) maps "job:index" to a list of behaviours, one per attempt (the last one repeats):
  {"exit": N}              report READY (and wait for GO when gated), then exit N
  {"exit": N, "secs": S}   the same after S seconds
  {"signal": "SIGKILL"}    kill itself with that signal after READY
  {"serve": true}          a ps: wait until stopped (SIGTERM exits 143)
  {"ignore_term": true}    ignore SIGTERM and wait (only SIGKILL ends it)
  {"error": "text"}        print "error: text" and exit 2, before READY (bad input)
Every attempt appends "<task> <attempt> <event> <unix time>" lines to STUB_JOURNAL, so a test can read
what happened in which order.
"""

import faulthandler
import json
import os
import signal
import sys
import time

task = json.loads(os.environ["TF_CONFIG"])["task"]
name = f"{task['type']}:{task['index']}"
journal = os.environ["STUB_JOURNAL"]
attempt = sum(1 for line in open(journal) if line.split()[:1] == [name] and line.split()[2] == "start") + 1 \
    if os.path.exists(journal) else 1
plan = json.loads(os.environ["STUB_PLAN"]).get(name, [{"exit": 0}])
behaviour = plan[min(attempt, len(plan)) - 1]


def note(event: str) -> None:
    with open(journal, "a") as f:
        f.write(f"{name} {attempt} {event} {time.time()}\n")


def status(event: str, **fields) -> None:
    print("@launcher-status " + json.dumps({"event": event, **fields}), flush=True)


def on_term(signum, frame):
    note("sigterm")
    sys.exit(128 + signum)


note("start")
faulthandler.register(signal.SIGQUIT)  # stacks on request, as the task program
signal.signal(signal.SIGTERM, signal.SIG_IGN if behaviour.get("ignore_term") else on_term)
if "error" in behaviour:
    print(f"error: {behaviour['error']}", file=sys.stderr, flush=True)
    sys.exit(2)
go = []
signal.signal(signal.SIGUSR1, lambda signum, frame: go.append(time.time()))
status("ready")
if os.environ.get("LAUNCHER_GATED") == "1":
    while not go:
        time.sleep(0.02)
note("go")
if behaviour.get("serve") or behaviour.get("ignore_term"):
    while True:
        time.sleep(0.1)
if "signal" in behaviour:
    note("dies")
    os.kill(os.getpid(), getattr(signal, behaviour["signal"]))
status("session", step=0)
time.sleep(behaviour.get("secs", 0))
status("done", step=10, local_steps=10)
note(f"exit {behaviour['exit']}")
sys.exit(behaviour["exit"])
