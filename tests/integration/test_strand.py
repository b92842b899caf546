"""Nothing blocks the strand (issue 12, item 6): the service serves every
client on one thread, so an identity look-up that waits (a user database
behind NSS) or a refusal nobody reads must not delay anyone else. An
LD_PRELOAD shim plays the slow database (getpwuid_r for uid nobody waits until
the test releases it) and the client that never reads (send to uid nobody
finds a full buffer). Uses uid nobody as the second user, so needs root (CI
runs as root)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from harness import RawClient, Service
from peer import read_frame

NOBODY = 65534
PYTHON = "/usr/bin/python3"  # N.B. the system's: one under /root is out of nobody's reach
HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer.py")

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static long env_uid(const char* name) {
  const char* value = getenv(name);
  return value ? atol(value) : -1;
}

/* Waits until the test writes a byte to the FIFO $SHIM_RELEASE. */
static void wait_for_release(void) {
  char c;
  int fd = open(getenv("SHIM_RELEASE"), O_RDONLY);
  if (fd >= 0) {
    if (read(fd, &c, 1) < 0)
      perror("shim: read");
    close(fd);
  }
}

/* A user database that does not answer for $SHIM_STALL_LOOKUP_UID. */
int getpwuid_r(uid_t uid, struct passwd* pw, char* buf, size_t len, struct passwd** result) {
  int (*real)(uid_t, struct passwd*, char*, size_t, struct passwd**) =
      dlsym(RTLD_NEXT, "getpwuid_r");
  if ((long)uid == env_uid("SHIM_STALL_LOOKUP_UID")) {
    fprintf(stderr, "shim: getpwuid_r(%ld) stalled\n", (long)uid);
    wait_for_release();
    fprintf(stderr, "shim: getpwuid_r(%ld) released\n", (long)uid);
  }
  return real(uid, pw, buf, len, result);
}

/* A peer of uid $SHIM_STALL_SEND_UID that never reads: its buffer is full,
   so a non-blocking send gets EAGAIN and a blocking one waits. 0: go on. */
static int stall_send(int fd, int flags) {
  long stalled = env_uid("SHIM_STALL_SEND_UID");
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (stalled < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      (long)cred.uid != stalled)
    return 0;
  if ((fcntl(fd, F_GETFL) & O_NONBLOCK) || (flags & MSG_DONTWAIT)) {
    errno = EAGAIN;
    return -1;
  }
  fprintf(stderr, "shim: send to uid %ld stalled\n", stalled);
  wait_for_release();
  return 0;
}

ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  ssize_t (*real)(int, const struct msghdr*, int) = dlsym(RTLD_NEXT, "sendmsg");
  return stall_send(fd, flags) ? -1 : real(fd, msg, flags);
}

ssize_t send(int fd, const void* data, size_t size, int flags) {
  ssize_t (*real)(int, const void*, size_t, int) = dlsym(RTLD_NEXT, "send");
  return stall_send(fd, flags) ? -1 : real(fd, data, size, flags);
}
"""


def never_reads(endpoint):
    """As nobody: opens two connections and reads neither; prints "connected",
    and when stdin gives a line, how many bytes the second one then yields
    before it ends ({"bytes": N, "closed": bool})."""
    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    first.connect(endpoint)
    second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    second.connect(endpoint)
    print("connected", flush=True)
    sys.stdin.readline()
    second.settimeout(10)
    received, closed = b"", False
    try:
        while chunk := second.recv(65536):
            received += chunk
        closed = True
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    print(json.dumps({"bytes": len(received), "closed": closed}), flush=True)
    sys.stdin.read()


def as_nobody(args, **kwargs):
    return subprocess.Popen(args, user=NOBODY, group=NOBODY, extra_groups=[], cwd=HERE, **kwargs)


@unittest.skipUnless(os.geteuid() == 0, "needs root to act as a second uid (CI runs as root)")
class StrandNeverWaits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise unittest.SkipTest("no C compiler for the getpwuid_r/sendmsg shim")
        cls.tmp = tempfile.TemporaryDirectory(prefix="discarbiter-strand-")
        cls.shim = os.path.join(cls.tmp.name, "stall.so")
        source = os.path.join(cls.tmp.name, "stall.c")
        with open(source, "w") as f:
            f.write(SHIM)
        subprocess.run([cc, "-shared", "-fPIC", "-o", cls.shim, source, "-ldl"], check=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.release_fifo = os.path.join(self.tmp.name, f"release-{self.id().split('.')[-1]}")
        os.mkfifo(self.release_fifo)
        self.addCleanup(os.unlink, self.release_fifo)
        self.service = None
        self.children = []

    def tearDown(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
            for stream in (child.stdin, child.stdout):
                if stream:
                    stream.close()
        if self.service:
            self.release(wait=False)
            if self.service.proc.poll() is None:
                self.service.proc.send_signal(signal.SIGTERM)
                try:
                    self.service.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.service.proc.kill()
                    self.service.proc.wait()
            self.service.stop()

    def start(self, config, **shim_env):
        env = dict(os.environ, LD_PRELOAD=self.shim, SHIM_RELEASE=self.release_fifo,
                   # N.B. the sanitizer builds: ASan wants its runtime first
                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0",
                   **{k: str(v) for k, v in shim_env.items()})
        self.service = Service(config=dict(config, socket_mode="0666"), env=env)
        os.chmod(self.service.dir.name, 0o755)  # N.B. so that nobody can reach the socket

    def release(self, wait=True):
        """Lets one stalled call of the shim go on."""
        try:
            fd = os.open(self.release_fifo, os.O_WRONLY | (0 if wait else os.O_NONBLOCK))
        except OSError:
            return  # N.B. without wait: nothing is stalled
        os.write(fd, b"x")
        os.close(fd)

    def greeted_root(self, name):
        client = RawClient(self.service.endpoint)
        client.sock.settimeout(5)
        self.assertTrue(client.request({"id": 1, "op": "hello", "protocol": 1,
                                        "client_name": name, "pid": os.getpid()})["ok"])
        return client

    def round_trip(self, client):
        """Seconds for one status request; fails if it is not answered in 5 s."""
        began = time.monotonic()
        try:
            reply = client.request({"id": 2, "op": "status"})
        except socket.timeout:
            self.fail("a connected client's request was not answered within 5 s")
        self.assertTrue(reply["ok"], reply)
        return time.monotonic() - began

    def nobody_says_hello(self, name, **kwargs):
        p = as_nobody([PYTHON, PEER, self.service.endpoint, "requests", name,
                       json.dumps([{"op": "status"}])], stdout=subprocess.PIPE, text=True,
                      **kwargs)
        self.children.append(p)
        return p

    def test_a_stuck_user_lookup_delays_no_connected_client(self):
        self.start({}, SHIM_STALL_LOOKUP_UID=NOBODY)
        root = self.greeted_root("Root")
        stalled = self.nobody_says_hello("Stalled")
        self.service.log.wait_for(f"shim: getpwuid_r({NOBODY}) stalled")
        took = self.round_trip(root)
        print(f"\nwhile nobody's getpwuid_r is stuck: root's status answered in "
              f"{took * 1000:.1f} ms")
        self.assertLess(took, 1.0)
        # Once the user database answers, the stalled connection is served.
        self.release()
        out, _ = stalled.communicate(timeout=10)
        hello, status = json.loads(out)
        self.assertTrue(hello["ok"], hello)
        me = [c for c in status["status"]["clients"] if c["client_name"] == "Stalled"]
        self.assertEqual([c["user"] for c in me], ["nobody"], status)

    def test_connections_awaiting_identification_are_bounded(self):
        self.start({"limits": {"max_pending_connections": 2}}, SHIM_STALL_LOOKUP_UID=NOBODY)
        stalled = self.nobody_says_hello("Stalled")
        self.service.log.wait_for(f"shim: getpwuid_r({NOBODY}) stalled")
        queued = RawClient(self.service.endpoint)  # N.B. the second one waiting
        refused = RawClient(self.service.endpoint)
        refused.sock.settimeout(5)
        try:
            reply = refused.read_frame()
        except socket.timeout:
            self.fail("the connection over max_pending_connections was not refused within 5 s")
        self.assertEqual(reply["error"]["name"], "DA_E_LIMIT_REACHED", reply)
        self.assertIn("limits.max_pending_connections", reply["error"]["message"])
        self.assertTrue(refused.closed_by_peer())
        self.service.log.wait_for("refusing connections on")
        # Released, both waiting connections are served.
        self.release()
        out, _ = stalled.communicate(timeout=10)
        self.assertTrue(json.loads(out)[0]["ok"], out)
        queued.sock.settimeout(5)
        self.assertTrue(queued.request({"id": 1, "op": "hello", "protocol": 1,
                                        "client_name": "Queued", "pid": 1})["ok"])
        print(f"\nmax_pending_connections 2, one look-up stuck: the third connection got "
              f"{reply['error']['name']}: {reply['error']['message']}")

    def test_a_stuck_lookup_does_not_stop_the_service_from_stopping(self):
        self.start({}, SHIM_STALL_LOOKUP_UID=NOBODY)
        self.nobody_says_hello("Stalled", stderr=subprocess.DEVNULL)  # N.B. it is cut off
        self.service.log.wait_for(f"shim: getpwuid_r({NOBODY}) stalled")
        began = time.monotonic()
        self.service.proc.send_signal(signal.SIGTERM)
        try:
            code = self.service.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("the service did not stop within 10 s while a look-up was stuck")
        self.assertEqual(code, 0)
        print(f"\nstopped in {(time.monotonic() - began) * 1000:.0f} ms with a look-up stuck")

    def test_a_client_that_never_reads_its_refusal_delays_no_one(self):
        self.start({"limits": {"max_sessions_per_user": 1, "handshake_ms": 60000}},
                   SHIM_STALL_SEND_UID=NOBODY)
        root = self.greeted_root("Root")
        squatter = as_nobody([PYTHON, __file__, "never-reads", self.service.endpoint],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.children.append(squatter)
        self.assertEqual(squatter.stdout.readline().strip(), "connected")
        self.service.log.wait_for("refusing connection from pid")
        took = self.round_trip(root)
        print(f"\nwhile nobody does not read its refusal: root's status answered in "
              f"{took * 1000:.1f} ms")
        self.assertLess(took, 1.0)
        # The refusal could not be written; the connection is closed at its deadline.
        squatter.stdin.write("check\n")
        squatter.stdin.flush()
        report = json.loads(squatter.stdout.readline())
        self.assertEqual(report, {"bytes": 0, "closed": True})


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "never-reads":
        never_reads(sys.argv[2])
    else:
        unittest.main()
