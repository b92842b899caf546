"""Clients that subscribe and never read (issue 11, finding 1): while another
client runs 100,000 acquire/release pairs, the events pile up in their
outboxes until `limits.max_outbox_bytes`; each is then disconnected with the
reason logged, and nobody else notices. (The service once closed such a
session inside the send of an event, while the arbiter was walking its
subscribers, and died with SIGSEGV after ~25,000 pairs.)

Run as a script it is one of the clients that must keep pace, each in its
own process so that none waits for this one's interpreter lock:
`load ENDPOINT DRIVE PAIRS BATCH` pipelines acquire/release pairs in
batches; `read ENDPOINT` subscribes and reads every event until "Marker"
acquires a drive, then prints what it heard."""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

from harness import RawClient, Service, encode_frame

# N.B. a tenth under the sanitizers (their presets set *SAN_OPTIONS), which
# slow the service several times over; still several times what overflows
# their 1 MiB outboxes.
SANITIZED = any(name in os.environ for name in ("ASAN_OPTIONS", "TSAN_OPTIONS"))
PAIRS = 10_000 if SANITIZED else 100_000
BATCH = 8  # pairs per round trip; N.B. small, so a session's pipelined requests stay few
SLOW_SUBSCRIBERS = 4
# N.B. the reading subscriber's slack too: seconds of events either way.
OUTBOX = (1 if SANITIZED else 4) * 1024 * 1024


class Drain:
    """Reads a child's pipe all the time, in a thread, so that the child never
    blocks on it (a full pipe would stall the service's logging, and with it
    the service, or stop `discarb watch` from reading its events). Keeps the
    lines `keep` accepts; waits for a line with a deadline."""

    def __init__(self, stream, keep=lambda line: True):
        self.fd = stream.fileno()
        self.keep = keep
        self.lines = []
        self.ended = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        rest = b""
        while True:
            chunk = os.read(self.fd, 1 << 20)
            *complete, rest = (rest + chunk).split(b"\n")
            kept = [line.decode(errors="replace") for line in complete if self.keep(line)]
            with self.cond:
                self.lines.extend(kept)
                self.ended = not chunk
                self.cond.notify_all()
            if not chunk:
                return

    def wait_for(self, needle, timeout=30.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if self.ended or left <= 0:
                    raise AssertionError(f"no line containing {needle!r} within {timeout} s; "
                                         f"saw {self.lines[-20:]}")
                self.cond.wait(left)


def hello(client, name):
    reply = client.request({"id": 1, "op": "hello", "protocol": 1, "client_name": name,
                            "pid": os.getpid()})
    assert reply["ok"], reply


class SlowReaders(unittest.TestCase):
    def setUp(self):
        # N.B. the log level stays info: Service waits for "listening on".
        self.service = Service(simulate=2, config={"limits": {"max_outbox_bytes": OUTBOX},
                                                   "logging": {"queue": 1 << 20}})
        # N.B. the audit records (two per acquire/release pair) are counted, not kept.
        self.log = Drain(self.service.proc.stderr, keep=lambda line: b" drive=" not in line)

    def tearDown(self):
        self.service.proc.terminate()
        self.log.thread.join(timeout=30)
        self.assertEqual(self.service.stop(), 0, "discarbiterd exits 0 on SIGTERM")

    def test_subscribers_that_never_read_are_disconnected_and_nobody_else_notices(self):
        endpoint = self.service.endpoint
        slow = []
        for i in range(SLOW_SUBSCRIBERS):
            c = RawClient(endpoint)
            hello(c, f"Slow{i}")
            self.assertTrue(c.request({"id": 2, "op": "subscribe"})["ok"])
            slow.append(c)  # N.B. and never read again

        # A subscriber that reads, in a process of its own.
        reader = subprocess.Popen([sys.executable, os.path.abspath(__file__), "read", endpoint],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.service.children.append(reader)
        self.assertEqual(reader.stdout.readline().strip(), "subscribed")

        # Another client on sim1 throughout: every pair must work, and its
        # slowest answer is printed.
        stop = threading.Event()
        other = {"pairs": 0, "failures": [], "slowest": 0.0}

        def other_client():
            c = RawClient(endpoint)
            hello(c, "Other")
            n = 10
            while not stop.is_set():
                for op in ("acquire", "release"):
                    start = time.monotonic()
                    r = c.request({"id": n, "op": op, "drive": "sim1"})
                    other["slowest"] = max(other["slowest"], time.monotonic() - start)
                    n += 1
                    if not r or not r.get("ok"):
                        other["failures"].append(r)
                        return
                other["pairs"] += 1
                # N.B. pacing (a pair per 10 ms), not waiting for an event:
                # the load, not this client, should have the service's time.
                stop.wait(0.01)
        other_thread = threading.Thread(target=other_client, daemon=True)
        other_thread.start()

        load = subprocess.run([sys.executable, os.path.abspath(__file__), "load", endpoint,
                               "sim0", str(PAIRS), str(BATCH)],
                              capture_output=True, text=True, timeout=170)
        self.assertEqual(load.returncode, 0, load.stderr)
        result = json.loads(load.stdout)
        print(f"\nslow readers: {result['pairs']} acquire/release pairs on sim0 in "
              f"{result['seconds']:.1f} s "
              f"({result['pairs'] / result['seconds']:.0f} pairs/s), batches of {BATCH}, "
              f"{SLOW_SUBSCRIBERS} subscribers not reading, limits.max_outbox_bytes {OUTBOX}"
              f"{' (sanitizer build)' if SANITIZED else ''}")
        self.assertEqual(result["failures"], [])
        self.assertEqual(result["pairs"], PAIRS)

        self.assertIsNone(self.service.proc.poll(), "the service is alive")
        for i in range(SLOW_SUBSCRIBERS):
            line = self.log.wait_for(f"(Slow{i}): closing: client is not reading: ")
            queued = int(line.split("client is not reading: ")[1].split()[0])
            self.assertGreater(queued, OUTBOX)
        # Each slow subscriber's connection ends once it reads what the
        # kernel still holds for it.
        for c in slow:
            c.sock.settimeout(10)
            while c.sock.recv(1 << 20):
                pass

        stop.set()
        other_thread.join(timeout=30)
        print(f"slow readers: meanwhile {other['pairs']} pairs on sim1 by another client, "
              f"slowest answer "
              f"{other['slowest'] * 1000:.0f} ms")
        self.assertEqual(other["failures"], [])
        self.assertGreater(other["pairs"], 0)

        status = self.service.status()
        names = {c["client_name"] for c in status["clients"]}
        self.assertFalse(names & {f"Slow{i}" for i in range(SLOW_SUBSCRIBERS)}, names)
        for drive in status["drives"]:
            self.assertIsNone(drive["owner"], drive)
            self.assertEqual(drive["lock_state"], "free", drive)

        # The subscriber that reads heard every acquire and release of sim0:
        # a last acquire by "Marker" comes after all of them.
        marker = RawClient(endpoint)
        hello(marker, "Marker")
        self.assertTrue(marker.request({"id": 2, "op": "acquire", "drive": "sim0"})["ok"])
        out, err = reader.communicate(timeout=60)
        self.assertEqual(reader.returncode, 0, err)
        self.assertEqual(json.loads(out), {"acquired": PAIRS, "released": PAIRS})
        self.assertTrue(marker.request({"id": 3, "op": "release", "drive": "sim0"})["ok"])


class Frames:
    """Frames from a socket, read in large pieces."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.at = 0  # N.B. an offset, not a slice per frame: the buffer may hold thousands

    def next(self):
        while True:
            if len(self.buffer) - self.at >= 8:
                json_len, payload_len = struct.unpack_from("<II", self.buffer, self.at)
                start, end = self.at + 8, self.at + 8 + json_len + payload_len
                if len(self.buffer) >= end:
                    self.at = end
                    return json.loads(self.buffer[start:start + json_len])
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the service closed the connection")
            self.buffer = self.buffer[self.at:] + chunk
            self.at = 0


def connect(endpoint, name):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(endpoint)
    sock.sendall(encode_frame({"id": 1, "op": "hello", "protocol": 1, "client_name": name,
                               "pid": os.getpid()}))
    frames = Frames(sock)
    assert frames.next()["ok"]
    return sock, frames


def read(endpoint):
    """Subscribes, then counts sim0's acquired and released events until
    "Marker" acquires."""
    sock, frames = connect(endpoint, "Reader")
    sock.sendall(encode_frame({"id": 2, "op": "subscribe"}))
    assert frames.next()["ok"]
    print("subscribed", flush=True)
    heard = {"acquired": 0, "released": 0}
    while True:
        event = frames.next()
        if event.get("owner", {}).get("client_name") == "Marker":
            break
        if event.get("drive") == "sim0" and event.get("event") in heard:
            heard[event["event"]] += 1
    print(json.dumps(heard))


def load(endpoint, drive, pairs, batch):
    """Pipelines `batch` acquire/release pairs at a time on one session."""
    sock, frames = connect(endpoint, "Load")
    failures = []
    start = time.monotonic()
    done, next_id = 0, 2
    while done < pairs and len(failures) < 10:
        n = min(batch, pairs - done)
        requests = []
        for _ in range(n):
            requests.append(encode_frame({"id": next_id, "op": "acquire", "drive": drive}))
            requests.append(encode_frame({"id": next_id + 1, "op": "release", "drive": drive}))
            next_id += 2
        sock.sendall(b"".join(requests))
        for i in range(2 * n):
            r = frames.next()
            if not r.get("ok") or r.get("lock_count") != (1 if i % 2 == 0 else 0):
                failures.append(r)
        done += n
    seconds = time.monotonic() - start
    print(json.dumps({"pairs": done, "seconds": seconds, "failures": failures}))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) == 3 and sys.argv[1] == "read":
        read(sys.argv[2])
    else:
        unittest.main()
