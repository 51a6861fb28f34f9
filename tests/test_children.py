"""Children do not outlive their parent: a killed script leaves no embedded broker behind."""

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")

STARTS_A_BROKER_THEN_WAITS = """
import sys, time
from nirstream.devtools.embedded_broker import EmbeddedBroker
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


def test_a_broker_started_from_a_short_lived_thread_keeps_running():
    # The parent-death signal follows the forking thread: it must not stop children started from
    # a pool thread (asyncio.to_thread) when that thread ends.
    import threading

    from nirstream.devtools.embedded_broker import EmbeddedBroker, _listening

    started = []
    thread = threading.Thread(target=lambda: started.append(EmbeddedBroker.start()))
    thread.start()
    thread.join()
    broker = started[0]
    try:
        assert broker.process.poll() is None and _listening(broker.port)
        deadline = time.monotonic() + 1.0
        while broker.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # a signal on thread exit would arrive within this window
        assert broker.process.poll() is None, "the broker stopped when the thread that started it ended"
    finally:
        broker.stop()
