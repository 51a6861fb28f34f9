"""Children do not outlive their parent: a killed script leaves no embedded broker behind."""

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")

STARTS_A_BROKER_THEN_WAITS = """
import sys, time
from stream.broker import EmbeddedBroker
broker = EmbeddedBroker.start()
print(broker.process.pid, flush=True)
time.sleep(600)  # until the test kills this process
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_embedded_broker_stops_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", STARTS_A_BROKER_THEN_WAITS], stdout=subprocess.PIPE, text=True)
    broker_pid = int(parent.stdout.readline())
    assert alive(broker_pid)
    parent.kill()  # SIGKILL: no cleanup code runs in the parent
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the broker's exit
    still_running = alive(broker_pid)
    if still_running:
        os.kill(broker_pid, 9)
    assert not still_running, "the embedded broker outlived the process that started it"
