"""Sessions as the kernel sees the service (issue 15): what a completed hello
leaves armed in the service's reactor, and what clients that never say hello
can make it hold. Everything is read from /proc/PID (the service's timerfd,
its VmRSS); nothing waits for a time but the handshake deadline itself."""
import json
import os
import resource
import select
import struct
import time
import unittest

from harness import RawClient, Service, encode_frame
from test_bounds import memory

MiB = 1024 * 1024
# N.B. under ASan and TSan the service's RSS says nothing about what it
# holds: the figure is printed, not asserted (as test_bounds.py).
SANITIZED = any(v in os.environ for v in ("ASAN_OPTIONS", "TSAN_OPTIONS"))


def hello_frame(name):
    body = json.dumps({"id": 1, "op": "hello", "protocol": 1, "client_name": name,
                       "pid": os.getpid()}).encode()
    return body


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

    # N.B. the timerfd shows only the earliest timer: no drive, so no drive
    # job's watchdog (the strand's one timer stays armed at a finished job's
    # deadline, AsioScheduler); the idle check (600 s) is the next wake-up.
    HANDSHAKE_S = 10

    def setUp(self):
        # N.B. the idle check (600 s by default) is the next wake-up by design.
        self.service = Service(simulate=0, config={"limits": {
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
        # N.B. a hello's reply may leave before its session cancels the
        # deadline and re-arms the reactor: wait for that, with a deadline
        # well before the handshake's own.
        deadline = time.monotonic() + self.HANDSHAKE_S / 2
        while self.armed_within_handshake() and time.monotonic() < deadline:
            select.select([], [], [], 0.01)
        self.assertEqual(self.armed_within_handshake(), [],
                         "the service would wake at a cancelled handshake deadline")


class MemoryReturned(unittest.TestCase):
    """What a burst of sessions took is returned to the system once they
    close (malloc_trim, a second after): nothing long-lived may sit between
    their allocations. Before, Asio's reactor made each socket's state (kept
    for ever in its pool) between the allocations of its session, and a fifth
    of the memory came back."""

    SESSIONS = 500

    def setUp(self):
        self.service = Service(simulate=1, config={"limits": {
            "max_sessions": 1024, "max_sessions_per_user": 1024}})
        self.pid = self.service.proc.pid

    def tearDown(self):
        self.service.stop()

    def test_a_burst_of_idle_sessions_is_returned_when_they_close(self):
        before = memory(self.pid)[0]
        clients = [RawClient(self.service.endpoint) for _ in range(self.SESSIONS)]
        for i, c in enumerate(clients):
            hello(c, f"Idle{i}")
        grown = memory(self.pid)[0]
        for c in clients:
            c.close()
        RawClient.opened.clear()
        # N.B. the trim comes a second after the sessions close: wait for the
        # memory to come back, with a deadline.
        wanted = grown - 0.75 * (grown - before)
        deadline = time.monotonic() + 10
        while memory(self.pid)[0] > wanted and time.monotonic() < deadline:
            select.select([], [], [], 0.05)
        after = memory(self.pid)[0]
        print(f"\n{self.SESSIONS} idle sessions took {(grown - before) / 1024:.0f} KiB; "
              f"{(grown - after) / 1024:.0f} KiB returned when they closed")
        if not SANITIZED:
            self.assertLessEqual(after, wanted, "less than 3/4 of it returned")


class UnauthenticatedPayloads(unittest.TestCase):
    """Before hello a session gets no payload buffer at the announced size
    (FrameDecoder::set_payload_space(false)): clients that announce a 1 MiB
    hello payload and stall cost the bytes they sent, not 1 MiB each, and are
    cut at the handshake deadline."""

    CLIENTS = 120
    HANDSHAKE_MS = 1500

    def setUp(self):
        self.service = Service(simulate=1, config={"limits": {
            "handshake_ms": self.HANDSHAKE_MS, "max_sessions_per_user": 200,
            "max_sessions": 256, "max_pending_connections": 256}})
        self.pid = self.service.proc.pid

    def tearDown(self):
        self.service.stop()

    def sessions(self):
        return len(self.service.status()["clients"])

    def test_stalled_announcements_stay_small_and_are_cut_at_the_deadline(self):
        idle = self.sessions()  # N.B. a status request is a session of its own
        before = memory(self.pid)[0]
        body = hello_frame("Staller")
        clients = []
        for _ in range(self.CLIENTS):
            c = RawClient(self.service.endpoint)
            # 1 MiB announced (max_transfer_bytes by default), 1 KiB sent.
            c.send(struct.pack("<II", len(body), MiB) + body + b"\0" * 1024)
            clients.append(c)
        # Every one of them is a session by now: a status counts them.
        connected = time.monotonic()
        deadline = connected + 10
        while self.sessions() < idle + self.CLIENTS:
            self.assertLess(time.monotonic(), deadline, "not every client became a session")
        growth = memory(self.pid)[0] - before
        print(f"\n{self.CLIENTS} stalled 1 MiB announcements: the service's RSS grew by "
              f"{growth / MiB:.1f} MiB")
        if not SANITIZED:
            # With a buffer at the announced size: > 120 MiB.
            self.assertLess(growth, 16 * MiB)
        # Each is cut at its handshake deadline, none much later.
        for c in clients:
            c.sock.settimeout(10)
            self.assertTrue(c.closed_by_peer(), "a stalled client outlived its deadline")
        took = time.monotonic() - connected
        print(f"all {self.CLIENTS} closed {took:.2f} s after the last connected")
        self.assertEqual(self.sessions(), idle)


class OutOfFileDescriptors(unittest.TestCase):
    """A service out of file descriptors (EMFILE) fails every accept at once:
    it must neither spin on it nor flood its log, keep serving its sessions,
    and accept again once descriptors are freed. Before, it tried again at
    once: a whole CPU and hundreds of thousands of log lines a second (found
    by the hostile review of issue 15)."""

    ROOM = 10  # descriptors left to the service past those it holds

    def setUp(self):
        self.service = Service(simulate=1, config={"limits": {"max_sessions_per_user": 200}})
        self.pid = self.service.proc.pid

    def tearDown(self):
        self.service.stop()

    def cpu_ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def test_accepting_waits_while_out_of_descriptors_and_resumes(self):
        if "ASAN_OPTIONS" in os.environ:
            # N.B. UBSan's vptr check probes memory through a pipe: without a
            # free descriptor it reports valid objects as invalid.
            self.skipTest("under ASan+UBSan: out of descriptors, UBSan's own checks fail")
        limit = len(os.listdir(f"/proc/{self.pid}/fd")) + self.ROOM
        resource.prlimit(self.pid, resource.RLIMIT_NOFILE, (limit, limit))
        clients = []
        for i in range(2 * self.ROOM):
            c = RawClient(self.service.endpoint)  # N.B. the listen backlog takes it
            c.send(encode_frame({"id": 1, "op": "hello", "protocol": 1,
                                 "client_name": f"Fd{i}", "pid": os.getpid()}))
            clients.append(c)
        self.service.log.wait_for("Too many open files")
        # N.B. a window to measure in, not a wait for an event: spinning on
        # accept took a whole CPU (100 ticks a second).
        before = self.cpu_ticks()
        select.select([], [], [], 1.0)
        spent = self.cpu_ticks() - before
        print(f"out of descriptors: {spent} CPU ticks in 1 s")
        self.assertLess(spent, 30, "the service spins on accept")
        # N.B. which of them were served depends on what else took the last
        # descriptors (a session's pidfd, the sanitizers' own files).
        for c in clients:
            c.close()
        # The next line about accepting says it resumed, not another failure.
        line = self.service.log.wait_for("accept")
        self.assertIn("again", line)
        c = RawClient(self.service.endpoint)
        hello(c, "AfterTheShortage")


if __name__ == "__main__":
    unittest.main()
