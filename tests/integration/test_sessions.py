"""Sessions as the kernel sees the service (issue 15): what a completed hello
leaves armed in the service's reactor, read from /proc/PID (the service's
timerfd); nothing waits for a time."""
import os
import select
import time
import unittest

from harness import RawClient, Service


def hello(c, name):
    reply = c.request({"id": 1, "op": "hello", "protocol": 1, "client_name": name,
                       "pid": os.getpid()})
    assert reply["ok"], reply


def timerfd_wakeups(pid):
    """The seconds until each of the process's armed timerfds fires (Asio's
    epoll reactor sleeps on one, armed at the earliest timer it knows of)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:[timerfd]":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = f.read()
        except FileNotFoundError:
            continue  # closed meanwhile
        for line in info.splitlines():
            if line.startswith("it_value:"):
                sec, nsec = line.split("(")[1].rstrip(")").split(",")
                left = int(sec) + int(nsec) / 1e9
                if left > 0:
                    out.append(left)
    return out


class NoWakeUpAfterHello(unittest.TestCase):
    """A session's handshake deadline is cancelled when hello succeeds; the
    reactor must not stay armed at it (Asio's epoll reactor does not re-arm
    its timerfd when a timer is cancelled: before the fix, the service woke
    once at the last cancelled deadline after every burst of hellos)."""

    HANDSHAKE_S = 30

    def setUp(self):
        # N.B. the idle check (600 s by default) is the next wake-up by design.
        self.service = Service(simulate=1, config={"limits": {
            "handshake_ms": self.HANDSHAKE_S * 1000, "max_sessions_per_user": 64}})
        self.pid = self.service.proc.pid

    def tearDown(self):
        self.service.stop()

    def armed_within_handshake(self):
        return [s for s in timerfd_wakeups(self.pid) if s <= self.HANDSHAKE_S]

    def test_after_a_burst_of_hellos_nothing_is_armed_before_the_idle_check(self):
        clients = [RawClient(self.service.endpoint) for _ in range(40)]
        # Every client connected and waits for its hello: the deadline is armed
        # (this is the reading the assertions below depend on).
        deadline = time.monotonic() + 10
        while not self.armed_within_handshake():
            self.assertLess(time.monotonic(), deadline, "the handshake deadline never armed")
            select.select([], [], [], 0.01)
        for i, c in enumerate(clients):
            hello(c, f"Burst{i}")
        self.assertEqual(self.armed_within_handshake(), [],
                         "the service would wake at a cancelled handshake deadline")


if __name__ == "__main__":
    unittest.main()
