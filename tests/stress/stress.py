#!/usr/bin/env python3
"""Concurrency stress with an invariant checker (docs/reliability.md).

  stress.py DISCARBITERD [--seconds S] [--clients N] [--drives D] [--kills-per-second K]
            [--slow-subscribers M]

Runs the service on D simulated drives and N client processes
(stress_client.py) doing random acquire (with and without waits), nested
acquire, release, execute, owner and reconnects, while this script SIGKILLs
random clients and starts new ones, and M sessions subscribe to events and
never read again (issue 11, finding 1) while one more client (never killed)
only acquires and releases one more drive of its own, for a steady stream
of events: with
`limits.max_outbox_bytes` at 64 KiB each must be disconnected, with the
reason in the log, while the service carries on. Then it replays the service's audit log
(every lock decision, in the order the service made them) and checks:
never two owners of a drive at once; every grant from a queue goes to the
head of that drive's FIFO; every session's lock counts balance; every drive
is free and no wait is left once all clients are gone. Prints the counts and
the verdict; exits 1 on any violation.
"""
import argparse
import collections
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import LineReader  # noqa: E402

AUDIT = re.compile(r" (\w+) drive=(\S+) client='[^']*' session=(\d+) pid=\d+ user=\S+ "
                   r"lock_count=(\d+)(?:: (.*))?$")


class Checker:
    def __init__(self):
        self.owner = {}      # drive -> session
        self.count = {}      # drive -> lock count
        self.queue = collections.defaultdict(list)
        self.balance = collections.Counter()  # session -> acquired - released
        self.acquiring_ended = set()          # (drive, session) ended mid-acquire
        self.waiting_at_free = {}             # drive -> the queue when it last went free
        self.violations = []
        self.records = 0
        self.kinds = collections.Counter()

    def fail(self, what):
        self.violations.append(what)
        if os.environ.get("STRESS_DEBUG"):
            print("\n".join(self.recent[-30:]) + "\n--> " + what, file=sys.stderr)

    def feed(self, line):
        m = AUDIT.search(line)
        if not m:
            return
        kind, drive, session, count = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        detail = m.group(5) or ""
        self.records += 1
        self.recent = (getattr(self, "recent", []) + [line])[-30:]
        self.kinds[kind] += 1
        owner = self.owner.get(drive)
        if kind == "acquired":
            if owner is not None:
                self.fail(f"two owners of {drive}: {owner} and {session}")
            queue = self.queue[drive]
            if "granted from the queue" in detail:
                if not queue or queue[0] != session:
                    self.fail(f"{drive} granted to {session} ahead of the queue {queue}")
                else:
                    queue.pop(0)
            else:
                # A direct acquire starts only on a free drive with nobody
                # waiting: whoever waited when the drive last went free must
                # have been served first.
                jumped = [w for w in self.waiting_at_free.get(drive, []) if w in queue]
                if jumped or session in queue:
                    self.fail(f"{drive} taken by {session} while {jumped or [session]} waited")
            self.owner[drive], self.count[drive] = session, 1
            self.balance[session] += 1
        elif kind == "nested":
            if owner != session:
                self.fail(f"nested acquire of {drive} by {session}; owner {owner}")
            self.count[drive] = self.count.get(drive, 0) + 1
            self.balance[session] += 1
            if count != self.count[drive]:
                self.fail(f"{drive} count {count}, replay says {self.count[drive]}")
        elif kind == "released":
            if owner != session:
                self.fail(f"release of {drive} by {session}; owner {owner}")
            self.count[drive] -= 1
            self.balance[session] -= 1
            if count != self.count[drive] or count == 0:
                self.fail(f"{drive} count {count} after release, replay says {self.count[drive]}")
        elif kind == "freed":
            self.waiting_at_free[drive] = list(self.queue[drive])
            if owner == session:
                self.balance[session] -= self.count.get(drive, 0)
                del self.owner[drive]
                self.count[drive] = 0
            elif (drive, session) in self.acquiring_ended:
                self.acquiring_ended.discard((drive, session))
            else:
                self.fail(f"{drive} freed for {session}; owner {owner}")
        elif kind == "session_ended" and "while acquiring" in detail:
            self.acquiring_ended.add((drive, session))
            queue = self.queue[drive]
            if queue and queue[0] == session:
                queue.pop(0)
        elif kind == "waiting":
            self.queue[drive].append(session)
        elif kind in ("wait_expired", "wait_dropped"):
            if session in self.queue[drive]:
                self.queue[drive].remove(session)
            else:
                self.fail(f"{kind} for {session} on {drive}, which was not waiting")
        elif kind == "acquire_failed":
            self.waiting_at_free[drive] = list(self.queue[drive])
            queue = self.queue[drive]
            if queue and queue[0] == session:
                queue.pop(0)

    def finish(self):
        for drive, owner in self.owner.items():
            self.fail(f"{drive} still owned by {owner} after every client left")
        for drive, queue in self.queue.items():
            if queue:
                self.fail(f"{drive} still has waiters {queue}")
        for session, n in self.balance.items():
            if n != 0:
                self.fail(f"session {session}'s counts do not balance: {n:+d}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("discarbiterd")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--drives", type=int, default=3)
    ap.add_argument("--kills-per-second", type=float, default=4)
    ap.add_argument("--slow-subscribers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    python = sys.executable

    with tempfile.TemporaryDirectory(prefix="discarbiter-stress-") as d:
        endpoint = os.path.join(d, "discarbiter.sock")
        config = os.path.join(d, "discarbiter.json")
        with open(config, "w") as f:
            # N.B. the replay needs every lock decision: nested acquires and
            # releases (debug), and waits no limiter may hold back.
            json.dump({"limits": {"max_sessions_per_user": 512, "max_sessions": 512,
                                  "max_outbox_bytes": SLOW_OUTBOX},
                       "log_level": "debug",
                       "logging": {"queue": 1 << 20, "warning_burst": 4294967295,
                                   "warnings_per_minute": 4294967295}}, f)
        # N.B. one more drive for the churn client, with the slow subscribers.
        simulate = args.drives + (1 if args.slow_subscribers else 0)
        service = subprocess.Popen([args.discarbiterd, "run", "--simulate", str(simulate),
                                    "--endpoint", endpoint, "--no-discover", "--config", config],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        log = LineReader(service.stderr)
        log.wait_for("listening on")
        # N.B. read the service's log all the time, in a thread: a full pipe
        # would block the service's logging and with it every client.
        lines = list(log.lines)
        reader = threading.Thread(target=lambda: lines.extend(
            line.decode(errors="replace").rstrip("\n") for line in service.stderr))
        reader.start()
        checker = Checker()
        slow = [subscribe_and_stop_reading(endpoint, f"SlowSubscriber{i}")
                for i in range(args.slow_subscribers)]
        end = time.monotonic() + args.seconds
        next_seed = 0
        reports, kills, started = [], 0, 0

        def spawn(*mode):
            nonlocal next_seed, started
            next_seed += 1
            started += 0 if mode else 1
            left = max(0.5, end - time.monotonic())
            return subprocess.Popen([python, os.path.join(HERE, "stress_client.py"), endpoint,
                                     str(args.seed * 1000 + next_seed), f"{left:.2f}",
                                     str(args.drives), *mode],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        clients = [spawn() for _ in range(args.clients)]
        # N.B. outside `clients`: never killed, and counted apart.
        churn = spawn("churn") if slow else None
        while time.monotonic() < end:
            # N.B. pacing the kills (the load's schedule), not waiting for an event.
            time.sleep(min(max(0.0, end - time.monotonic()), rng.expovariate(args.kills_per_second)))
            victim = rng.randrange(len(clients))
            if clients[victim].poll() is None and time.monotonic() < end - 0.5:
                clients[victim].send_signal(signal.SIGKILL)
                clients[victim].wait()
                kills += 1
                close(clients[victim])
                clients[victim] = spawn()
        churn_pairs = 0
        for c in clients + ([churn] if churn else []):
            out, err = c.communicate(timeout=120)
            if c is churn and c.returncode == 0:
                report = json.loads(out)
                churn_pairs = report["counts"]["grants"]
                checker.violations.extend(f"churn client: {v}" for v in report["violations"])
            elif c.returncode == 0 and out.strip():
                reports.append(json.loads(out))
            elif c.returncode != -signal.SIGKILL:
                checker.fail(f"a client failed (exit {c.returncode}): {err.strip()[-400:]}")
        status = subprocess.run([os.path.join(os.path.dirname(args.discarbiterd), "..",
                                              "client-lib", "discarb"), "--endpoint", endpoint,
                                 "--json", "status"], capture_output=True, text=True, timeout=30)
        service.send_signal(signal.SIGTERM)
        exit_code = service.wait(timeout=30)
        reader.join(timeout=30)
        for line in lines:
            checker.feed(line)
        for i, sock in enumerate(slow):
            sock.close()
            needle = f"(SlowSubscriber{i}): closing: client is not reading: "
            if not any(needle in line for line in lines):
                checker.fail(f"SlowSubscriber{i} subscribed and never read, and was not "
                             f"disconnected ({checker_events(lines)} events sent)")
        slow_closed = sum(1 for line in lines if "(SlowSubscriber" in line
                          and "closing: client is not reading" in line)
        if exit_code != 0:
            # N.B. under the sanitizers a report (a leak at exit, say) shows here.
            checker.fail(f"discarbiterd exited {exit_code} on SIGTERM; its last lines: "
                         f"{lines[-20:]}")
        checker.finish()
        if status.returncode == 0:
            dropped = json.loads(status.stdout)["service"]["log_dropped"]
            if dropped:
                checker.fail(f"{dropped} log records were dropped: the replay is incomplete")
            for drive in json.loads(status.stdout)["drives"]:
                if drive["owner"] is not None or drive["waiters"] or drive["tray_locked"]:
                    checker.fail(f"status after the run: {drive['id']} is not free: {drive}")
        else:
            checker.fail(f"status after the run failed: {status.stderr}")

    totals = collections.Counter()
    for r in reports:
        totals.update(r["counts"])
        checker.violations.extend(f"client: {v}" for v in r["violations"])
    print(f"stress: {args.clients} clients x {args.seconds:.0f} s on {args.drives} drives "
          f"(seed {args.seed}): {totals['operations']} operations by clients that finished, "
          f"{started} client processes, {kills} SIGKILLed; audit: {checker.records} records, "
          f"{checker.kinds['acquired']} grants ({checker.kinds['waiting']} waits queued, "
          f"{checker.kinds['wait_expired']} expired, {checker.kinds['wait_dropped']} dropped), "
          f"{checker.kinds['session_ended']} locks ended with their session")
    if slow:
        print(f"stress: {slow_closed} of {args.slow_subscribers} subscribers that stopped reading "
              f"disconnected (limits.max_outbox_bytes {SLOW_OUTBOX}), while one more client "
              f"ran {churn_pairs} acquire/release pairs on sim{args.drives}")
    print(f"stress: invariant violations: {len(checker.violations)}")
    for v in checker.violations[:20]:
        print(f"  {v}")
    sys.exit(1 if checker.violations else 0)


SLOW_OUTBOX = 64 * 1024


def subscribe_and_stop_reading(endpoint, name):
    """A session that subscribes to events, then never reads again."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(endpoint)
    for i, req in enumerate([{"op": "hello", "protocol": 1, "client_name": name, "pid": 1},
                             {"op": "subscribe"}]):
        body = json.dumps(dict(req, id=i + 1)).encode()
        sock.sendall(struct.pack("<II", len(body), 0) + body)
        header = read_exact(sock, 8)
        json_len, payload_len = struct.unpack("<II", header)
        reply = json.loads(read_exact(sock, json_len + payload_len)[:json_len])
        assert reply.get("ok"), reply
    return sock


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the service closed the connection")
        data += chunk
    return data


def checker_events(lines):
    """How many events the service sent each subscriber, as the audit shows."""
    return sum(1 for line in lines if AUDIT.search(line)
               and AUDIT.search(line).group(1) in ("acquired", "freed"))


def close(proc):
    for stream in (proc.stdout, proc.stderr):
        stream.close()


if __name__ == "__main__":
    main()
