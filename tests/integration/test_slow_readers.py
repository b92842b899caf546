"""Clients that subscribe and never read (issue 11, finding 1): while another
client runs 100,000 acquire/release pairs, the events pile up in their
outboxes until `limits.max_outbox_bytes`; each is then disconnected with the
reason logged, and nobody else notices. (The service once closed such a
session inside the send of an event, while the arbiter was walking its
subscribers, and died with SIGSEGV after ~25,000 pairs.)

Run as a script (`load ENDPOINT DRIVE PAIRS BATCH`) it is the load: one
session pipelining acquire/release pairs in batches, in its own process so
that it does not share this one's interpreter lock."""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

from harness import DISCARB, RawClient, Service, encode_frame

# N.B. a tenth under the sanitizers (their presets set *SAN_OPTIONS), which
# slow the service several times over; still ten times what overflows.
SANITIZED = any(name in os.environ for name in ("ASAN_OPTIONS", "TSAN_OPTIONS"))
PAIRS = 10_000 if SANITIZED else 100_000
BATCH = 8  # pairs per round trip; N.B. small, so a session's pipelined requests stay few
SLOW_SUBSCRIBERS = 4
OUTBOX = 2 * 1024 * 1024


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
        self.service = Service(simulate=2, config={"limits": {"max_outbox_bytes": OUTBOX}})
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

        # A subscriber that reads: discarb watch, its output kept whole.
        watch = subprocess.Popen([DISCARB, "--json", "watch"], env=self.service.env(),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        self.service.children.append(watch)
        watch.stderr.readline()  # "watching events": it has subscribed
        heard = Drain(watch.stdout)

        # Another client on sim1 throughout: each pair must stay prompt.
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
        heard.wait_for('"Marker"')
        with heard.cond:
            lines = list(heard.lines)
        lines = lines[: next(i for i, line in enumerate(lines) if '"Marker"' in line) + 1]
        self.assertTrue(marker.request({"id": 3, "op": "release", "drive": "sim0"})["ok"])
        events = [json.loads(line) for line in lines]
        counts = {kind: sum(1 for e in events if e["event"] == kind and e.get("drive") == "sim0")
                  for kind in ("acquired", "released")}
        self.assertEqual(counts, {"acquired": PAIRS + 1, "released": PAIRS})
        watch.stdin.close()
        self.assertEqual(watch.wait(timeout=30), 0)


def load(endpoint, drive, pairs, batch):
    """Pipelines `batch` acquire/release pairs at a time on one session."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(endpoint)
    sock.sendall(encode_frame({"id": 1, "op": "hello", "protocol": 1, "client_name": "Load",
                               "pid": os.getpid()}))
    buffer = b""
    failures = []

    def replies(n):
        nonlocal buffer
        out = []
        while len(out) < n:
            while len(buffer) >= 8:
                json_len, payload_len = struct.unpack_from("<II", buffer)
                end = 8 + json_len + payload_len
                if len(buffer) < end:
                    break
                out.append(json.loads(buffer[8:8 + json_len]))
                buffer = buffer[end:]
            if len(out) < n:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("the service closed the connection")
                buffer += chunk
        return out

    assert replies(1)[0]["ok"]
    start = time.monotonic()
    done, next_id = 0, 2
    while done < pairs and len(failures) < 10:
        n = min(batch, pairs - done)
        frames = []
        for _ in range(n):
            frames.append(encode_frame({"id": next_id, "op": "acquire", "drive": drive}))
            frames.append(encode_frame({"id": next_id + 1, "op": "release", "drive": drive}))
            next_id += 2
        sock.sendall(b"".join(frames))
        for i, r in enumerate(replies(2 * n)):
            if not r.get("ok") or r.get("lock_count") != (1 if i % 2 == 0 else 0):
                failures.append(r)
        done += n
    seconds = time.monotonic() - start
    print(json.dumps({"pairs": done, "seconds": seconds, "failures": failures}))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        unittest.main()
