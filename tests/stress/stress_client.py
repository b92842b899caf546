"""One stress client (tests/stress/stress.py starts many): random requests on
one session until its deadline, checking each answer against what it knows
it holds. Prints a JSON report on exit; a SIGKILLed one prints nothing.

  stress_client.py ENDPOINT SEED SECONDS DRIVES [churn]

churn: only acquire and release sim{DRIVES} (a drive of its own), as fast
as the service answers, CHURN_PAIRS times, so that subscribers get a stream
of events (each pair sends them two)."""
import json
import random
import socket
import struct
import sys
import time

CHURN_PAIRS = 5000
ACQUIRE_OK = {"ok"}
LOCKED = "E_IMAPI_RECORDER_LOCKED"


class Session:
    def __init__(self, endpoint, name):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(endpoint)
        self.next_id = 1
        self.held = {}  # drive -> lock count
        reply = self.call({"op": "hello", "protocol": 1, "client_name": name, "pid": 1})
        assert reply["ok"], reply

    def call(self, req):
        req = dict(req, id=self.next_id)
        self.next_id += 1
        body = json.dumps(req).encode()
        self.sock.sendall(struct.pack("<II", len(body), 0) + body)
        while True:
            header = self.exact(8)
            json_len, payload_len = struct.unpack("<II", header)
            reply = json.loads(self.exact(json_len))
            self.exact(payload_len)
            if "event" not in reply:
                assert reply["id"] == req["id"], (reply, req)
                return reply

    def exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the service closed the connection")
            data += chunk
        return data

    def close(self):
        self.sock.close()


def main():
    endpoint, seed, seconds, drives = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    churn = sys.argv[5:] == ["churn"]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    counts = {"operations": 0, "grants": 0, "waits_granted": 0, "waits_expired": 0,
              "locked": 0, "executes": 0, "reconnects": 0}
    violations = []
    session = Session(endpoint, f"Stress{seed}")

    def expect(cond, what):
        if not cond:
            violations.append(what)

    while time.monotonic() < deadline:
        drive = f"sim{drives if churn else rng.randrange(drives)}"
        op = rng.random()
        counts["operations"] += 1
        if churn:
            r = session.call({"op": "acquire", "drive": drive})
            expect(r.get("ok") and r.get("lock_count") == 1, f"churn acquire {r}")
            r = session.call({"op": "release", "drive": drive})
            expect(r.get("ok") and r.get("lock_count") == 0, f"churn release {r}")
            counts["grants"] += 1
            if counts["grants"] == CHURN_PAIRS:
                break
        elif op < 0.35:
            wait_ms = rng.choice([0, 0, 50, 200, 800])
            r = session.call({"op": "acquire", "drive": drive, "wait_ms": wait_ms})
            if r["ok"]:
                session.held[drive] = session.held.get(drive, 0) + 1
                expect(r["lock_count"] == session.held[drive], f"acquire count {r} vs {session.held}")
                counts["grants"] += 1
                if wait_ms:
                    counts["waits_granted"] += 1
            else:
                expect(r["error"]["name"] in (LOCKED, "DA_E_LIMIT_REACHED"), f"acquire {r}")
                expect(drive not in session.held, f"refused a drive it holds: {r}")
                counts["locked"] += 1
                if wait_ms and r["error"]["name"] == LOCKED:
                    counts["waits_expired"] += 1
        elif op < 0.65:
            r = session.call({"op": "release", "drive": drive})
            if drive in session.held:
                expect(r.get("ok"), f"release of a held drive {r}")
                session.held[drive] -= 1
                expect(r.get("lock_count") == session.held[drive], f"release count {r}")
                if session.held[drive] == 0:
                    del session.held[drive]
            else:
                expect(r["error"]["name"] == "HRESULT_FROM_WIN32(ERROR_NOT_LOCKED)", f"release {r}")
        elif op < 0.85:
            r = session.call({"op": "execute", "drive": drive, "cdb": "120000002400",
                              "direction": "in", "data_in_len": 36})
            counts["executes"] += 1
            if drive in session.held:
                expect(r.get("ok"), f"execute by the owner {r}")
            else:
                expect(r["error"]["name"] == LOCKED, f"execute by a non-owner {r}")
        elif op < 0.95:
            r = session.call({"op": "owner", "drive": drive})
            owner = r.get("owner")
            if drive in session.held:
                expect(owner and owner["client_name"] == f"Stress{seed}", f"owner {r}")
        else:
            session.close()  # ends with whatever it holds: the service frees it
            counts["reconnects"] += 1
            session = Session(endpoint, f"Stress{seed}")
    session.close()
    print(json.dumps({"counts": counts, "violations": violations}))


if __name__ == "__main__":
    main()
