"""Trust between clients and the service (docs/reliability.md, issue 11 findings
5, 7 and 9): clients refuse an endpoint that neither root nor their own user
serves; the service refuses an endpoint directory others could tamper with;
the last sessions are the administrators'; the owner's executable is the
connecting process's own. Uses uid nobody as the second user, so most tests
need root (CI runs as root)."""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import unittest

from harness import DISCARB, DISCARBITERD, LineReader, Service, encode_frame
from peer import read_frame

NOBODY = 65534
PYTHON = "/usr/bin/python3"  # N.B. the system's: one under /root is out of nobody's reach
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "needs root to act as a second uid "
                                "(CI runs as root)")


# Replaces a Unix socket with a symlink to $SWAP_VICTIM right after bind().
SWAP_AFTER_BIND = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int bind(int fd, const struct sockaddr* addr, socklen_t len) {
  int (*real)(int, const struct sockaddr*, socklen_t) = dlsym(RTLD_NEXT, "bind");
  int rc = real(fd, addr, len);
  const char* victim = getenv("SWAP_VICTIM");
  if (rc == 0 && victim && addr->sa_family == AF_UNIX) {
    const char* path = ((const struct sockaddr_un*)addr)->sun_path;
    if (unlink(path) == 0 && symlink(victim, path) == 0)
      fprintf(stderr, "shim: swapped %s for a symlink to %s\n", path, victim);
  }
  return rc;
}
"""


def subscribers(endpoint):
    """As a second user: opens subscribed sessions until one is refused; prints
    {"admitted": N, "refusal": error} and holds them until stdin closes."""
    held = []
    refusal = None
    while refusal is None and len(held) < 1000:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(endpoint)
        for i, req in enumerate([{"op": "hello", "protocol": 1, "client_name": "Squatter",
                                  "pid": 1}, {"op": "subscribe"}]):
            try:
                sock.sendall(encode_frame(dict(req, id=i + 1)))
            except OSError:
                pass  # N.B. refused and closed already: the refusal is there to read
            reply = read_frame(sock)
            if reply is None or not reply.get("ok"):
                refusal = reply["error"] if reply else {"name": "closed"}
                break
        else:
            held.append(sock)
    print(json.dumps({"admitted": len(held), "refusal": refusal}), flush=True)
    sys.stdin.read()


def fake_server(path):
    """As a second user: listens on PATH, prints "listening", then for one
    connection prints how many bytes the client sent before it closed."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    print("listening", flush=True)
    conn, _ = server.accept()
    conn.settimeout(20)
    received = b""
    try:
        while chunk := conn.recv(65536):
            received += chunk
            break  # N.B. a client that talks has already lost: stop here
    except socket.timeout:
        pass
    print(json.dumps({"received": len(received)}), flush=True)


def as_nobody(args, **kwargs):
    return subprocess.Popen(args, user=NOBODY, group=NOBODY, extra_groups=[], cwd=HERE, **kwargs)


@ROOT_ONLY
class EndpointTrust(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="discarbiter-trust-")
        os.chmod(self.tmp.name, 0o755)

    def tearDown(self):
        self.tmp.cleanup()

    def nobody_dir(self, name="nobody"):
        path = os.path.join(self.tmp.name, name)
        os.mkdir(path, 0o755)
        os.chown(path, NOBODY, NOBODY)
        return path

    def test_discarb_refuses_an_endpoint_that_another_user_serves(self):
        endpoint = os.path.join(self.nobody_dir(), "discarbiter.sock")
        server = as_nobody([PYTHON, __file__, "fake-server", endpoint], stdout=subprocess.PIPE,
                           text=True)
        try:
            self.assertEqual(server.stdout.readline().strip(), "listening")
            r = subprocess.run([DISCARB, "--endpoint", endpoint, "status"], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("E_ACCESSDENIED", r.stderr)
            self.assertIn(f"served by uid {NOBODY} (nobody), pid {server.pid}", r.stderr)
            report = json.loads(server.stdout.readline())
            self.assertEqual(report["received"], 0, "the client told the impostor something")
            print(f"\nimpostor as uid {NOBODY}: discarb refused it: {r.stderr.strip()}")
        finally:
            server.kill()
            server.wait()
            server.stdout.close()

    def test_a_service_run_by_a_user_serves_that_user_and_not_root(self):
        endpoint = os.path.join(self.nobody_dir(), "discarbiter.sock")
        service = as_nobody([DISCARBITERD, "run", "--simulate", "1", "--no-discover",
                             "--endpoint", endpoint], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
        try:
            LineReader(service.stderr).wait_for("listening on")
            mine = as_nobody([DISCARB, "--endpoint", endpoint, "status"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            out, err = mine.communicate(timeout=30)
            self.assertEqual(mine.returncode, 0, err)
            r = subprocess.run([DISCARB, "--endpoint", endpoint, "status"], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"served by uid {NOBODY} (nobody)", r.stderr)
            self.assertIn("neither root nor this user (uid 0 (root))", r.stderr)
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=15)
            service.stderr.close()

    def test_an_ordinary_user_talks_to_the_root_service(self):
        service = Service(config={"socket_mode": "0666"})
        try:
            os.chmod(service.dir.name, 0o755)
            p = as_nobody([DISCARB, "status"], env=service.env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
            out, err = p.communicate(timeout=30)
            self.assertEqual(p.returncode, 0, err)
            self.assertIn("sim0", out)
        finally:
            self.assertEqual(service.stop(), 0)

    def start_refused(self, endpoint):
        r = subprocess.run([DISCARBITERD, "run", "--simulate", "1", "--no-discover",
                            "--endpoint", endpoint], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(endpoint) and stat.S_ISSOCK(os.lstat(endpoint).st_mode),
                         "a socket was made")
        return r.stderr

    def test_a_directory_another_user_owns_stops_start_up(self):
        directory = self.nobody_dir()
        err = self.start_refused(os.path.join(directory, "discarbiter.sock"))
        self.assertIn(f"endpoint directory {directory} is owned by uid {NOBODY} (nobody)", err)
        print(f"\nrefused: {err.strip().splitlines()[-1]}")

    def test_a_directory_others_may_write_stops_start_up(self):
        for mode, who in ((0o777, "every user"), (0o1777, "every user"), (0o775, "its group")):
            directory = os.path.join(self.tmp.name, f"open{mode:o}")
            os.mkdir(directory)
            os.chmod(directory, mode)
            err = self.start_refused(os.path.join(directory, "discarbiter.sock"))
            self.assertIn(f"endpoint directory {directory} is writable by {who} "
                          f"(mode {mode:04o})", err)

    def test_a_symbolic_link_is_never_followed(self):
        victim = os.path.join(self.tmp.name, "victim")
        with open(victim, "w"):
            pass
        os.chmod(victim, 0o600)
        before = os.stat(victim)
        # ...at the socket's name...
        directory = os.path.join(self.tmp.name, "d")
        os.mkdir(directory, 0o755)
        os.symlink(victim, os.path.join(directory, "discarbiter.sock"))
        err = self.start_refused(os.path.join(directory, "discarbiter.sock"))
        self.assertIn("exists and is not a socket (a symbolic link)", err)
        # ...and as the directory itself.
        os.symlink(directory, os.path.join(self.tmp.name, "link"))
        err = self.start_refused(os.path.join(self.tmp.name, "link", "x.sock"))
        self.assertIn("is a symbolic link or not a directory", err)
        after = os.stat(victim)
        self.assertEqual((after.st_mode, after.st_uid, after.st_gid),
                         (before.st_mode, before.st_uid, before.st_gid))

    def test_a_socket_swapped_for_a_symbolic_link_after_bind_is_not_followed(self):
        """The race of finding 5: between bind() and setting the socket's mode,
        someone who may write the directory swaps the socket for a symlink to
        a file of root's; main's chmod(path) then opened that file to all.
        An LD_PRELOAD shim plays that someone, right after bind()."""
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            self.skipTest("no C compiler for the bind() shim")
        shim = os.path.join(self.tmp.name, "swap_after_bind.so")
        source = os.path.join(self.tmp.name, "swap_after_bind.c")
        with open(source, "w") as f:
            f.write(SWAP_AFTER_BIND)
        subprocess.run([cc, "-shared", "-fPIC", "-o", shim, source, "-ldl"], check=True)
        victim = os.path.join(self.tmp.name, "victim")
        with open(victim, "w"):
            pass
        os.chmod(victim, 0o600)
        directory = os.path.join(self.tmp.name, "d")
        os.mkdir(directory, 0o755)
        config = os.path.join(self.tmp.name, "discarbiter.json")
        with open(config, "w") as f:
            json.dump({"socket_mode": "0666"}, f)
        env = dict(os.environ, LD_PRELOAD=shim, SWAP_VICTIM=victim,
                   # N.B. the sanitizer builds: ASan wants its runtime first
                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
        proc = subprocess.Popen([DISCARBITERD, "run", "--simulate", "1", "--no-discover",
                                 "--config", config, "--endpoint",
                                 os.path.join(directory, "discarbiter.sock")],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        try:
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        self.assertIn("swapped", err, "the shim did not run")
        self.assertEqual(os.stat(victim).st_mode & 0o777, 0o600,
                         "the service changed the mode of the file the symlink names")
        self.assertNotEqual(proc.returncode, 0, err)
        self.assertIn("is not the socket just bound", err)

    def test_a_missing_directory_is_created_for_root_alone(self):
        directory = os.path.join(self.tmp.name, "new", "run")
        service = Service(endpoint=os.path.join(directory, "discarbiter.sock"))
        try:
            st = os.stat(directory)
            self.assertEqual((st.st_uid, st.st_mode & 0o022), (0, 0), oct(st.st_mode))
        finally:
            self.assertEqual(service.stop(), 0)


@ROOT_ONLY
class AdministratorsSlots(unittest.TestCase):
    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def fill_as_nobody(self):
        squatter = as_nobody([PYTHON, __file__, "subscribers", self.service.endpoint],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (squatter.stdin.close(), squatter.wait(timeout=10),
                                 squatter.stdout.close()))
        return json.loads(squatter.stdout.readline())

    def test_with_every_ordinary_slot_subscribed_root_still_connects_and_breaks(self):
        self.service = Service(config={"socket_mode": "0666",
                                       "limits": {"max_sessions": 12,
                                                  "admin_reserved_sessions": 2}})
        os.chmod(self.service.dir.name, 0o755)
        holder, out = self.service.hold("sim0", "Victim")
        out.wait_for("acquired sim0")
        report = self.fill_as_nobody()
        self.assertEqual(report["admitted"], 12 - 2 - 1, report)
        self.assertEqual(report["refusal"]["name"], "DA_E_LIMIT_REACHED")
        self.assertIn("the last 2 of its 12 are reserved for administrators",
                      report["refusal"]["message"])
        # Root gets in all the same, to break and to look.
        r = self.service.discarb("break", "sim0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("broke the lock of 'Victim'", r.stdout)
        self.assertEqual(holder.wait(timeout=10), 3)
        clients = self.service.status()["clients"]
        self.assertEqual(sum(c["user"] == "nobody" for c in clients), 9)
        print(f"\nslots: max_sessions 12, 2 reserved: nobody's subscribers took "
              f"{report['admitted']}, root still connected and broke the lock")

    def test_subscribed_sessions_count_against_the_per_user_limit(self):
        self.service = Service(config={"socket_mode": "0666",
                                       "limits": {"max_sessions_per_user": 5}})
        os.chmod(self.service.dir.name, 0o755)
        report = self.fill_as_nobody()
        self.assertEqual(report["admitted"], 5, report)
        self.assertIn("user 'nobody' has the maximum of 5 sessions", report["refusal"]["message"])


class OwnerIdentity(unittest.TestCase):
    def setUp(self):
        self.service = Service()

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def test_the_owner_executable_is_the_clients_own(self):
        holder, out = self.service.hold("sim0", "Holder")
        out.wait_for("acquired sim0")
        owner = self.service.status()["drives"][0]["owner"]
        self.assertEqual((owner["pid"], owner["exe"]), (holder.pid, os.path.realpath(DISCARB)))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to choose the next pid")
    def test_a_reused_pid_does_not_make_another_program_the_owner(self):
        """The process that connected exits before the service looks at it and
        another program gets its pid: the service must not record that
        program as the owner's executable (main did: it read /proc/PID/exe
        of whoever had the pid by then)."""
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w"):
                pass
        except OSError as e:
            self.skipTest(f"cannot choose the next pid here: {e}")
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        stopped = self.service.proc.pid
        os.kill(stopped, signal.SIGSTOP)  # N.B. it accepts nothing until SIGCONT
        sleeper = None
        try:
            connector = os.fork()
            if connector == 0:  # connects, leaves the socket to a child, exits
                try:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.connect(self.service.endpoint)
                    if os.fork() == 0:
                        os.close(go_w)
                        os.read(go_r, 1)
                        replies = []
                        for i, req in enumerate([{"op": "hello", "protocol": 1,
                                                  "client_name": "Reused", "pid": 1},
                                                 {"op": "acquire", "drive": "sim0"}]):
                            sock.sendall(encode_frame(dict(req, id=i + 1)))
                            replies.append(read_frame(sock))
                        os.write(out_w, json.dumps(replies).encode() + b"\n")
                        os.read(go_r, 1)  # N.B. holds the session until the pipe closes
                finally:
                    os._exit(0)
            os.waitpid(connector, 0)
            # Another program takes the connector's pid.
            for attempt in range(50):
                with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                    f.write(str(connector - 1))
                sleeper = subprocess.Popen(["sleep", "60"])
                if sleeper.pid == connector:
                    break
                sleeper.kill()
                sleeper.wait()
                sleeper = None
            if sleeper is None:
                self.skipTest(f"pid {connector} was not given to a new process in 50 tries")
            os.kill(stopped, signal.SIGCONT)
            stopped = None
            os.write(go_w, b"g")
            with os.fdopen(out_r) as f:
                out_r = None
                replies = json.loads(f.readline())
            self.assertTrue(replies[1]["ok"], replies)
            owner = self.service.status()["drives"][0]["owner"]
            self.assertEqual(owner["client_name"], "Reused")
            self.assertEqual(owner["pid"], connector, "the pid is the one that connected")
            self.assertNotEqual(owner.get("exe"), os.path.realpath(shutil.which("sleep")),
                                "the program that took the pid later was recorded as the owner")
            self.assertIn(owner.get("exe"), (None, ""), owner)
            print(f"\npid {connector} reused by sleep before the service looked: owner exe "
                  f"recorded as {owner.get('exe')!r}")
        finally:
            if stopped:
                os.kill(stopped, signal.SIGCONT)
            os.close(go_w)  # N.B. releases the session keeper
            os.close(go_r)
            os.close(out_w)
            if out_r is not None:
                os.close(out_r)
            if sleeper:
                sleeper.kill()
                sleeper.wait()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "subscribers":
        subscribers(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "fake-server":
        fake_server(sys.argv[2])
    else:
        unittest.main()
