"""Real processes for the integration tests: a discarbiterd on a temp socket
and discarb clients. Every wait is for an event (a log line, an output line,
an exit) with a deadline; nothing sleeps."""
import json
import os
import select
import signal
import socket
import struct
import subprocess
import tempfile
import time

DISCARBITERD = os.environ.get("DISCARBITERD", "discarbiterd")
DISCARB = os.environ.get("DISCARB", "discarb")


class LineReader:
    """Reads a child's pipe line by line with deadlines."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buffer = b""
        self.lines = []

    def wait_for(self, needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            for i, line in enumerate(self.lines):
                if needle in line:
                    del self.lines[: i + 1]
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line containing {needle!r} within {timeout} s; saw {self.lines}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise AssertionError(f"stream closed before {needle!r}; saw {self.lines}")
            self.buffer += chunk
            *complete, self.buffer = self.buffer.split(b"\n")
            self.lines.extend(c.decode(errors="replace") for c in complete)


class Service:
    def __init__(self, simulate=2, config=None, endpoint=None, env=None):
        self.dir = tempfile.TemporaryDirectory(prefix="discarbiter-test-")
        self.endpoint = endpoint or os.path.join(self.dir.name, "discarbiter.sock")
        args = [DISCARBITERD, "run", "--simulate", str(simulate), "--endpoint", self.endpoint,
                "--no-discover"]  # N.B. simulated drives only, whatever this machine has
        if config is not None:
            path = os.path.join(self.dir.name, "discarbiter.json")
            with open(path, "w") as f:
                json.dump(config, f)
            args += ["--config", path]
        self.children = []
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env)
        self.log = LineReader(self.proc.stderr)
        self.log.wait_for("listening on")

    def env(self):
        return dict(os.environ, DISCARBITER_ENDPOINT=self.endpoint)

    def discarb(self, *args, timeout=30):
        return subprocess.run([DISCARB, *args], env=self.env(), capture_output=True, text=True,
                              timeout=timeout)

    def status(self):
        r = self.discarb("--json", "status")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def spawn(self, *args):
        """Starts `discarb ARGS` with stdin kept open; returns (process, stdout reader)."""
        p = subprocess.Popen([DISCARB, *args], env=self.env(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.children.append(p)
        return p, LineReader(p.stdout)

    def hold(self, drive, name, *extra):
        """Starts `discarb hold` with stdin kept open; returns (process, stdout reader)."""
        return self.spawn("hold", drive, "--name", name, *extra)

    def stop(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
            for stream in (child.stdin, child.stdout, child.stderr):
                stream.close()
        for raw in RawClient.opened:
            raw.close()
        RawClient.opened.clear()
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=15)
        finally:
            # N.B. a service that did not stop in time fails the test (the
            # exception goes on) but must not outlive it.
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stderr.close()
            self.dir.cleanup()
        return self.proc.returncode


def encode_frame(obj, payload=b""):
    body = json.dumps(obj).encode()
    return struct.pack("<II", len(body), len(payload)) + body + payload


class RawClient:
    """Speaks the wire protocol directly, for inputs discarb never sends."""

    opened = []  # closed by Service.stop()

    def __init__(self, endpoint):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        RawClient.opened.append(self)
        self.sock.settimeout(10)
        self.sock.connect(endpoint)

    def send(self, data):
        self.sock.sendall(data)

    def request(self, obj, payload=b""):
        self.send(encode_frame(obj, payload))
        return self.read_frame()

    def read_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def read_frame(self):
        header = self.read_exact(8)
        if header is None:
            return None
        json_len, payload_len = struct.unpack("<II", header)
        obj = json.loads(self.read_exact(json_len))
        self.read_exact(payload_len)
        return obj

    def closed_by_peer(self):
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()
