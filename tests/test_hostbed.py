"""The host bed itself: hosts reach each other and nothing else, a cut host is cut off, teardown is total."""

import subprocess
import sys

import pytest

import hostbed

bed3 = hostbed.host_bed(3)

CONNECT = ("import socket,sys\n"
           "try:\n"
           "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()\n"
           "    print('connected')\n"
           "except OSError as e:\n"
           "    print(type(e).__name__)\n")
LISTEN = ("import socket,sys\n"
          "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind((sys.argv[1],7000));"
          "s.listen(8);print('listening',flush=True)\n"
          "while True: s.accept()[0].close()\n")


def connect(host, address, timeout=2.0):
    return host.run([sys.executable, "-c", CONNECT, address, "7000", str(timeout)]).stdout.strip()


def test_hosts_reach_each_other_and_nothing_else(bed3):
    server = bed3[1].popen([sys.executable, "-c", LISTEN, bed3[1].address], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "listening"
    assert connect(bed3[2], bed3[1].address) == "connected"
    assert connect(bed3[3], bed3[1].address) == "connected"
    for host in bed3.hosts:
        assert host.run(["ip", "-4", "route"]).stdout.split()[0] == "10.213.0.0/24"  # the bed's subnet only
        assert "default" not in host.run(["ip", "route"]).stdout
        # Only loopback and the one bridge address.
        addrs = host.run(["ip", "-4", "-o", "addr"]).stdout
        assert sorted(line.split()[3] for line in addrs.splitlines()) == ["10.213.0.%d/24" % host.number,
                                                                          "127.0.0.1/8"]
    # No route out: an address beyond the bed is unreachable at once (no packet is sent).
    assert connect(bed3[2], "192.0.2.1") == "OSError"
    # Nothing of the bed in the root namespace.
    assert "10.213.0." not in subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    assert server.pid in bed3[1].pids() and server.pid not in bed3[2].pids()  # the kernel's view of hosts


def test_a_cut_host_is_cut_off_until_restored(bed3):
    server = bed3[1].popen([sys.executable, "-c", LISTEN, bed3[1].address], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "listening"
    bed3[3].cut()
    assert connect(bed3[3], bed3[1].address, timeout=1) == "TimeoutError"
    assert connect(bed3[2], bed3[1].address) == "connected"
    bed3[3].restore()
    assert connect(bed3[3], bed3[1].address, timeout=10) == "connected"


def test_teardown_kills_every_process_and_deletes_the_namespaces():
    reason = hostbed.unavailable()
    if reason:
        pytest.skip(reason)
    bed = hostbed.HostBed(2).up()
    # Ignores SIGTERM (an ignored signal stays ignored across exec): only the SIGKILL ends it.
    sleeper = bed[2].popen(["sh", "-c", "trap '' TERM; echo ready; exec sleep 300"], stdout=subprocess.PIPE,
                           text=True)
    assert sleeper.stdout.readline().strip() == "ready"
    names = [h.netns for h in bed.hosts] + [bed.bridge_netns]
    bed.down()
    assert sleeper.wait(10) == -9
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [n for n in names if n in listed.split()]
