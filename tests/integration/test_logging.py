"""Logging that no client can use against the service (issue 11, finding 8):
a log sink nobody drains stalls no request, a flood of nested acquires is not
logged at info, and the warnings a client causes at will are rate-limited
per peer and per session."""
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import threading
import time
import unittest

from harness import RawClient, Service, encode_frame

HELLO = {"op": "hello", "protocol": 1, "pid": 1}
# A frame header announcing more JSON than limits.max_json_bytes: a decode error.
OVERSIZED = struct.pack("<II", 1 << 24, 0)


def greet(endpoint, name):
    client = RawClient(endpoint)
    reply = client.request(dict(HELLO, id=1, client_name=name))
    assert reply["ok"], reply
    return client


def pipeline(client, requests):
    """Sends every request at once, then reads one reply for each."""
    client.send(b"".join(encode_frame(dict(r, id=i)) for i, r in enumerate(requests, 100)))
    return [client.read_frame() for _ in requests]


def read_lines_until(reader, needle, timeout=10.0):
    """Every line of a LineReader up to and including the first containing
    `needle` (LineReader.wait_for returns only the match)."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        while reader.lines:
            line = reader.lines.pop(0)
            seen.append(line)
            if needle in line:
                return seen
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no line containing {needle!r} within {timeout} s; saw {seen}")
        ready, _, _ = select.select([reader.fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(reader.fd, 65536)
        if not chunk:
            raise AssertionError(f"stream closed before {needle!r}; saw {seen}")
        reader.buffer += chunk
        *complete, reader.buffer = reader.buffer.split(b"\n")
        reader.lines.extend(c.decode(errors="replace") for c in complete)


class StalledLog(unittest.TestCase):
    def test_status_answers_promptly_while_nobody_reads_the_services_stderr(self):
        service = Service(config={"log_level": "debug", "logging": {"queue": 256}})
        try:
            # From here on nobody reads the service's stderr, and its pipe
            # holds 4 KiB: a few dozen lines fill it.
            fcntl.fcntl(service.proc.stderr.fileno(), fcntl.F_SETPIPE_SZ, 4096)

            def churn(drive, pairs):
                # First acquire and final release: two info lines a pair,
                # and the nested pairs in between are debug lines.
                # N.B. pipelined in batches: requests that arrive while the
                # drive changes hands wait, up to limits.max_deferred_per_session
                # (64), and more would be refused.
                client = greet(service.endpoint, f"Churn{drive}")
                batch = [{"op": "acquire", "drive": drive}, {"op": "acquire", "drive": drive},
                         {"op": "release", "drive": drive}, {"op": "release", "drive": drive}] * 8
                for _ in range(pairs // 8):
                    replies = pipeline(client, batch)
                    failed = [r for r in replies if r is None or not r["ok"]]
                    assert not failed, failed[:2]

            def bad_frames(n):
                for _ in range(n):
                    client = RawClient(service.endpoint)
                    client.send(OVERSIZED)
                    assert client.read_frame()["ok"] is False
                    client.close()

            began = time.monotonic()
            workers = [threading.Thread(target=churn, args=("sim0", 1500)),
                       threading.Thread(target=churn, args=("sim1", 1500)),
                       threading.Thread(target=bad_frames, args=(300,))]
            for w in workers:
                w.start()
            for w in workers:
                w.join(timeout=60)
                self.assertFalse(w.is_alive(), "clients were not answered within 60 s")
            print(f"\n6,000 acquire/release and 300 bad frames with stderr stalled: "
                  f"{time.monotonic() - began:.2f} s")

            client = greet(service.endpoint, "Status")
            asked = time.monotonic()
            reply = client.request({"id": 2, "op": "status"})
            latency = time.monotonic() - asked
            self.assertTrue(reply["ok"], reply)
            dropped = reply["status"]["service"]["log_dropped"]
            print(f"status latency with stderr stalled: {latency * 1000:.1f} ms; "
                  f"log records dropped: {dropped}")
            self.assertLess(latency, 1.0)
            self.assertGreater(dropped, 0)

            # The stop cannot write its last lines either: it waits 2 s for
            # the log, then leaves anyway.
            stopping = time.monotonic()
            service.proc.send_signal(signal.SIGTERM)
            self.assertEqual(service.proc.wait(timeout=15), 0)
            print(f"stop with stderr stalled: {time.monotonic() - stopping:.2f} s")
        finally:
            service.stop()


class LogVolume(unittest.TestCase):
    def setUp(self):
        self.service = Service(config={"log_level": "info",
                                       "logging": {"warning_burst": 8,
                                                   "warnings_per_minute": 60},
                                       "limits": {"max_sessions_per_user": 4}})

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def test_nested_acquire_and_release_are_not_logged_at_info(self):
        client = greet(self.service.endpoint, "Nester")
        self.assertTrue(client.request({"id": 2, "op": "acquire", "drive": "sim0"})["ok"])
        replies = pipeline(client, [{"op": "acquire", "drive": "sim0"},
                                    {"op": "release", "drive": "sim0"}] * 2000)
        self.assertTrue(all(r["ok"] for r in replies))
        self.assertTrue(client.request({"id": 3, "op": "release", "drive": "sim0"})["ok"])
        lines = read_lines_until(self.service.log, "freed drive=sim0")
        self.assertTrue(any("acquired drive=sim0 client='Nester'" in l for l in lines), lines)
        flood = [l for l in lines if "nested drive=" in l or "released drive=" in l]
        self.assertEqual(flood, [], f"{len(flood)} nested lines at info, e.g. {flood[:2]}")
        print(f"\n2,000 nested acquire/release pairs: {len(lines)} log lines at info")

    def test_bad_frames_and_refused_connections_are_rate_limited_per_user(self):
        began = time.monotonic()
        for _ in range(200):
            client = RawClient(self.service.endpoint)
            client.send(OVERSIZED)
            self.assertFalse(client.read_frame()["ok"])
            client.close()
        # Over max_sessions_per_user (4): each further connection is refused.
        held = [greet(self.service.endpoint, f"Held{i}") for i in range(4)]
        for _ in range(100):
            refused = RawClient(self.service.endpoint)
            self.assertEqual(refused.read_frame()["error"]["name"], "DA_E_LIMIT_REACHED")
            refused.close()
        lines = self.marked_lines(held[0])
        took = time.monotonic() - began
        warnings = [l for l in lines if " warning " in l]
        print(f"\n200 bad frames and 100 refused connections from one user in {took:.2f} s: "
              f"{len(warnings)} warnings logged")
        self.assertGreaterEqual(len(warnings), 1)
        # The burst, and what refilled meanwhile (one a second).
        self.assertLessEqual(len(warnings), 8 + int(took) + 1, warnings)

        # Once the user's bucket has a token again, the next warning says how
        # many were held back.
        deadline = time.monotonic() + 10
        summary = []
        while not summary and time.monotonic() < deadline:
            refused = RawClient(self.service.endpoint)
            refused.read_frame()
            refused.close()
            summary = [l for l in self.marked_lines(held[0]) if "messages suppressed" in l]
        self.assertTrue(summary, "no warning said how many were suppressed")
        print(f"then: {summary[0].split(': ', 1)[-1]}")

    def marked_lines(self, client):
        """The log up to a marker that is never limited: a first acquire and a
        final release."""
        self.assertTrue(client.request({"id": 2, "op": "acquire", "drive": "sim0"})["ok"])
        self.assertTrue(client.request({"id": 3, "op": "release", "drive": "sim0"})["ok"])
        return read_lines_until(self.service.log, "freed drive=sim0")


NOBODY = 65534
PYTHON = "/usr/bin/python3"  # N.B. the system's: one under /root is out of nobody's reach
PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer.py")


@unittest.skipUnless(os.geteuid() == 0, "needs root to run a client as a second uid "
                     "(CI runs as root)")
class LockRecordVolume(unittest.TestCase):
    """An ordinary user's own acquire/release cycles are lock records, but it
    can run thousands a second: they go through the per-user limiter, while
    an administrator's are never held back."""

    def setUp(self):
        self.service = Service(config={"log_level": "info", "socket_mode": "0666",
                                       "logging": {"warning_burst": 8,
                                                   "warnings_per_minute": 60}})
        os.chmod(self.service.dir.name, 0o755)  # N.B. so that nobody can reach the socket

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def test_an_ordinary_users_acquire_release_cycles_are_rate_limited(self):
        pairs = 300
        began = time.monotonic()
        out = subprocess.run([PYTHON, PEER, self.service.endpoint, "requests", "Cycler",
                              json.dumps([{"op": "acquire", "drive": "sim0"},
                                          {"op": "release", "drive": "sim0"}] * pairs)],
                             user=NOBODY, group=NOBODY, capture_output=True, text=True,
                             timeout=60, cwd=os.path.dirname(PEER))
        self.assertEqual(out.returncode, 0, out.stderr)
        replies = json.loads(out.stdout)
        self.assertTrue(all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:2])
        took = time.monotonic() - began
        # The marker: root's own cycle, never held back.
        root = greet(self.service.endpoint, "Marker")
        self.assertTrue(root.request({"id": 2, "op": "acquire", "drive": "sim1"})["ok"])
        self.assertTrue(root.request({"id": 3, "op": "release", "drive": "sim1"})["ok"])
        lines = read_lines_until(self.service.log, "freed drive=sim1 client='Marker'")
        cycler = [l for l in lines if "client='Cycler'" in l and
                  ("acquired drive=" in l or "freed drive=" in l)]
        print(f"\n{pairs} acquire/release pairs by uid nobody in {took:.2f} s: "
              f"{len(cycler)} of {2 * pairs} lock records logged")
        self.assertGreaterEqual(len(cycler), 1, "the first cycle must be logged")
        # The burst, and what refilled meanwhile (one a second).
        self.assertLessEqual(len(cycler), 8 + int(took) + 1, cycler)
        self.assertTrue(any("acquired drive=sim1 client='Marker'" in l for l in lines), lines)


if __name__ == "__main__":
    unittest.main()
