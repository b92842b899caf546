#!/usr/bin/env python3
"""Writes the seed corpus in tests/fuzz/corpus/ (committed; run again after
changing the protocol). frame/: byte streams for fuzz_frame (first byte: the
piece size). dispatch/: records for fuzz_dispatch (see its header: control / 3 % 5
picks feed, end, clock or stop reading)."""
import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def frame(obj, payload=b""):
    body = json.dumps(obj).encode()
    return struct.pack("<II", len(body), len(payload)) + body + payload


def hello(i, name="Seed"):
    return {"id": i, "op": "hello", "protocol": 1, "client_name": name, "pid": 7}


INQUIRY = {"op": "execute", "drive": "sim0", "cdb": "120000002400", "direction": "in",
           "data_in_len": 36}
SESSIONS = [
    [hello(1), {"id": 2, "op": "acquire", "drive": "sim0"}, dict(INQUIRY, id=3),
     {"id": 4, "op": "release", "drive": "sim0"}],
    [hello(1), {"id": 2, "op": "list_drives"}, {"id": 3, "op": "status"},
     {"id": 4, "op": "owner", "drive": "sim1"}, {"id": 5, "op": "subscribe"}],
    [hello(1), {"id": 2, "op": "acquire", "drive": "sim1", "wait_ms": 500, "force": True},
     {"id": 3, "op": "execute", "drive": "sim1", "cdb": "2A0000000000000001 00".replace(" ", ""),
      "direction": "out"}],
    [hello(1), {"id": 2, "op": "break", "drive": "sim0"}],
    [{"id": 1, "op": "acquire", "drive": "sim0"}],
    [hello(1, "bad\u00e9name")],
    [{"id": 1, "op": "hello", "protocol": 2, "client_name": "Future", "pid": 1}],
]


def write(kind, name, data):
    os.makedirs(os.path.join(HERE, kind), exist_ok=True)
    with open(os.path.join(HERE, kind, name), "wb") as f:
        f.write(data)


def record(control, data):
    out = b""
    while True:  # N.B. records carry at most 255 bytes; split longer ones
        out += bytes([control, min(len(data), 255)]) + data[:255]
        data = data[255:]
        if not data:
            return out


def main():
    for n, session in enumerate(SESSIONS):
        stream = b"".join(frame(r) for r in session)
        write("frame", f"session{n}", bytes([7]) + stream)
        write("dispatch", f"one_session{n}", record(0, stream))
    write("frame", "payload", bytes([63]) + frame({"id": 1, "op": "execute"}, b"\x00" * 100))
    write("frame", "oversize", bytes([1]) + struct.pack("<II", 1 << 30, 0))
    write("frame", "not_an_object", bytes([3]) + struct.pack("<II", 3, 0) + b"[1]")
    # A payload over fuzz_frame's 8 KiB limit, skipped, then a frame after it.
    write("frame", "oversize_payload", bytes([16]) + frame({"id": 1, "op": "execute"}, b"\x00" * 8193)
          + frame({"id": 2, "op": "status"}))
    # The owner's WRITE over fuzz_dispatch's 64 KiB frame limit: refused, the
    # session goes on holding sim0.
    write("dispatch", "oversize_write",
          record(0, frame(hello(1)) + frame({"id": 2, "op": "acquire", "drive": "sim0"})
                 + frame(dict(INQUIRY, id=3, cdb="2A0000000000000020 00".replace(" ", ""),
                              direction="out", data_in_len=0), b"\x00" * (64 * 1024 + 1))
                 + frame({"id": 4, "op": "owner", "drive": "sim0"})))
    # Two clients contending: the owner (session 1) holds, session 2 waits,
    # time passes, session 1 ends, the admin (session 0) breaks session 2.
    owner = frame(hello(1, "Owner")) + frame({"id": 2, "op": "acquire", "drive": "sim0"})
    waiter = frame(hello(1, "Waiter")) + frame({"id": 2, "op": "acquire", "drive": "sim0",
                                                "wait_ms": 2000})
    admin = frame(hello(1, "Admin")) + frame({"id": 2, "op": "break", "drive": "sim0"})
    write("dispatch", "contention",
          record(1, owner) + record(2, waiter) + record(9, b"\x05") + record(7, b"")
          + record(0, admin) + record(2, frame({"id": 3, "op": "release", "drive": "sim0"})))
    # Slow readers (issue 11, finding 1). Session 1 subscribes and stops
    # reading with an outbox of 256 bytes (control 13: session 1, op 4;
    # length 3) while session 0 acquires and releases sim0 four times and
    # session 2 subscribes and reads; its outbox overflows within the first
    # pairs and it is closed on a later turn.
    pairs = b"".join(frame({"id": 2 + 2 * i, "op": "acquire", "drive": "sim0"})
                     + frame({"id": 3 + 2 * i, "op": "release", "drive": "sim0"})
                     for i in range(4))
    write("dispatch", "slow_subscriber",
          record(1, frame(hello(1, "Slow")) + frame({"id": 2, "op": "subscribe"}))
          + record(13, b"\0" * 3)
          + record(2, frame(hello(1, "Reader")) + frame({"id": 2, "op": "subscribe"}))
          + record(0, frame(hello(1, "Load")) + pairs))
    # The owner subscribes, holds sim0 and stops reading (256 bytes); a
    # refused request of its own fills its outbox to just short of the bound;
    # the admin breaks sim0, and the lock_broken event overflows it.
    write("dispatch", "slow_owner_broken",
          record(1, frame(hello(1, "Owner")) + frame({"id": 2, "op": "subscribe"})
                 + frame({"id": 3, "op": "acquire", "drive": "sim0"}))
          + record(13, b"\0" * 3)
          + record(1, frame({"id": 4, "op": "release", "drive": "sim1"}))  # an error reply
          + record(0, frame(hello(1, "Admin")) + frame({"id": 2, "op": "break", "drive": "sim0"})))

if __name__ == "__main__":
    main()
