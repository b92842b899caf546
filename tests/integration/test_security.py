"""Who may do what (docs/protocol.md "Who may send what"), with an ordinary
user as a second uid (nobody) next to root, and the limits that keep one
user's flood to itself (docs/reliability.md)."""
import grp
import json
import os
import subprocess
import time
import unittest

from harness import DISCARB, RawClient, Service

NOBODY = 65534
# N.B. the system's Python: one under /root (pyenv) is out of nobody's reach.
PYTHON = "/usr/bin/python3"
PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer.py")
INQUIRY = {"op": "execute", "drive": "sim0", "cdb": "120000002400", "direction": "in",
           "data_in_len": 36}
# Every request type after hello, in an order that exercises each gate:
# sim1 is held by root for the whole matrix, sim0 is free.
MATRIX = [
    {"op": "list_drives"},
    {"op": "status"},
    {"op": "owner", "drive": "sim1"},
    {"op": "subscribe"},
    {"op": "acquire", "drive": "sim1"},                  # held by root
    {"op": "release", "drive": "sim1"},                  # not ours
    dict(INQUIRY, drive="sim1"),                         # not ours
    {"op": "execute", "drive": "sim0", "cdb": "000000000000", "direction": "none"},  # not held
    {"op": "acquire", "drive": "sim0"},
    INQUIRY,                                             # ours now
    {"op": "release", "drive": "sim0"},
    {"op": "break", "drive": "sim1"},
]


def outcome(reply):
    return "ok" if reply["ok"] else reply["error"]["name"]


@unittest.skipUnless(os.geteuid() == 0, "needs root to run a client as a second uid "
                     "(CI runs as root)")
class Authorization(unittest.TestCase):
    def setUp(self):
        self.service = Service(config={"socket_mode": "0666", "admin_group": "cdrom"})
        os.chmod(self.service.dir.name, 0o755)  # N.B. so that nobody can reach the socket
        self.root_holder = RawClient(self.service.endpoint)
        self.request(self.root_holder, {"op": "hello", "protocol": 1, "client_name": "RootBurner",
                                        "pid": 1})
        self.assertTrue(self.request(self.root_holder, {"op": "acquire", "drive": "sim1"})["ok"])

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def request(self, client, req, _ids=iter(range(1000, 10**9))):
        return client.request(dict(req, id=next(_ids)))

    def as_user(self, name, requests, groups=()):
        out = subprocess.run([PYTHON, PEER, self.service.endpoint, "requests", name,
                              json.dumps(requests)], user=NOBODY, group=NOBODY,
                             extra_groups=list(groups), capture_output=True, text=True,
                             timeout=30, cwd=os.path.dirname(PEER))
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def test_an_ordinary_user_is_gated_as_documented(self):
        replies = self.as_user("Ordinary", MATRIX)
        self.assertEqual(outcome(replies[0]), "ok", "hello")
        got = [outcome(r) for r in replies[1:]]
        self.assertEqual(got, ["ok", "ok", "ok", "ok",
                               "E_IMAPI_RECORDER_LOCKED",
                               "HRESULT_FROM_WIN32(ERROR_NOT_LOCKED)",
                               "E_IMAPI_RECORDER_LOCKED",
                               "E_IMAPI_RECORDER_LOCKED",
                               "ok", "ok", "ok",
                               "E_ACCESSDENIED"])
        self.assertIn("'nobody' is not one", replies[-1]["error"]["message"])
        status = self.service.status()
        self.assertEqual(status["drives"][1]["owner"]["client_name"], "RootBurner",
                         "a refused break changes nothing")
        self.assertIsNone(status["drives"][0]["owner"])

    def test_root_is_an_administrator_and_may_break(self):
        admin = RawClient(self.service.endpoint)
        self.request(admin, {"op": "hello", "protocol": 1, "client_name": "Admin", "pid": 1})
        got = []
        for req in MATRIX:
            reply = self.request(admin, req)
            while "event" in reply:  # subscribed: events arrive between replies
                reply = admin.read_frame()
            got.append(outcome(reply))
        self.assertEqual(got[:11], ["ok", "ok", "ok", "ok",
                                    "E_IMAPI_RECORDER_LOCKED",
                                    "HRESULT_FROM_WIN32(ERROR_NOT_LOCKED)",
                                    "E_IMAPI_RECORDER_LOCKED",
                                    "E_IMAPI_RECORDER_LOCKED",
                                    "ok", "ok", "ok"],
                         "an administrator is gated like anyone else, break aside")
        self.assertEqual(got[11], "ok", "break")
        # The broken owner was told, and its next request says why.
        event = self.root_holder.read_frame()
        self.assertEqual((event["event"], event["drive"], event["by"]["client_name"]),
                         ("lock_broken", "sim1", "Admin"))
        reply = self.request(self.root_holder, {"op": "release", "drive": "sim1"})
        self.assertEqual(reply["error"]["name"], "E_IMAPI_RECORDER_LOCKED")
        self.assertIn("broken by administrator 'Admin'", reply["error"]["message"])
        line = self.service.log.wait_for("broken drive=sim1 client='RootBurner'")
        self.assertIn("broken by 'Admin'", line)
        self.assertIsNone(self.service.status()["drives"][1]["owner"])

    def test_a_member_of_the_admin_group_may_break(self):
        cdrom = grp.getgrnam("cdrom").gr_gid
        replies = self.as_user("GroupAdmin", [{"op": "break", "drive": "sim1"}], groups=[cdrom])
        self.assertEqual(outcome(replies[1]), "ok", replies[1])
        self.assertEqual(replies[1]["broken_owner"]["client_name"], "RootBurner")

    def test_discarb_break_names_the_broken_owner_and_hold_ends_with_exit_3(self):
        holder, out = self.service.hold("sim0", "Victim")
        out.wait_for("acquired sim0")
        r = self.service.discarb("break", "sim0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("broke the lock of 'Victim'", r.stdout)
        self.assertEqual(holder.wait(timeout=10), 3)
        self.assertIn("broken by administrator", holder.stderr.read().decode())


@unittest.skipUnless(os.geteuid() == 0, "needs root to connect as a second uid (CI runs as root)")
class SocketAccess(unittest.TestCase):
    """socket_mode 0660 with socket_group: the OS lets in root and the group."""

    def setUp(self):
        self.service = Service(config={"socket_group": "cdrom"})
        os.chmod(self.service.dir.name, 0o755)  # N.B. so that nobody can reach the socket

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def as_nobody(self, args, groups=()):
        return subprocess.run(args, user=NOBODY, group=NOBODY, extra_groups=list(groups),
                              capture_output=True, text=True, timeout=30,
                              cwd=os.path.dirname(PEER), env=self.service.env())

    def test_the_socket_belongs_to_the_group_with_mode_0660(self):
        socket = os.stat(self.service.endpoint)
        self.assertEqual((socket.st_gid, socket.st_mode & 0o777),
                         (grp.getgrnam("cdrom").gr_gid, 0o660))

    def test_a_member_of_the_group_is_served(self):
        cdrom = grp.getgrnam("cdrom").gr_gid
        out = self.as_nobody([PYTHON, PEER, self.service.endpoint, "requests", "Member",
                              json.dumps([{"op": "list_drives"}])], groups=[cdrom])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(json.loads(out.stdout)[1]["ok"])

    def test_anyone_else_is_refused_by_the_os_with_a_message_that_says_so(self):
        out = self.as_nobody([DISCARB, "status"])
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("E_ACCESSDENIED", out.stderr)
        self.assertIn("members of its socket_group", out.stderr)
        self.assertEqual([c["uid"] for c in self.service.status()["clients"]], [0],
                         "the service never saw it: the only session is root's status")


@unittest.skipUnless(os.geteuid() == 0, "needs root to flood as a second uid (CI runs as root)")
class Floods(unittest.TestCase):
    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def answered_in_ms(self, client, rounds=20):
        times = []
        for i in range(rounds):
            start = time.monotonic()
            reply = client.request({"id": 100 + i, "op": "status"})
            times.append((time.monotonic() - start) * 1000)
            self.assertTrue(reply["ok"], reply)
        return max(times)

    def test_a_well_behaved_client_is_answered_while_300_connections_sit_silent(self):
        self.service = Service(config={"limits": {"max_sessions": 1024,
                                                  "max_sessions_per_user": 1024,
                                                  "handshake_ms": 60000}})
        silent = [RawClient(self.service.endpoint) for _ in range(300)]
        good = RawClient(self.service.endpoint)
        self.assertTrue(good.request({"id": 1, "op": "hello", "protocol": 1,
                                      "client_name": "Good", "pid": 1})["ok"])
        self.assertTrue(good.request({"id": 2, "op": "acquire", "drive": "sim0"})["ok"])
        worst = self.answered_in_ms(good)
        print(f"\nflood: 300 silent connections; a well-behaved client's status answered "
              f"in at most {worst:.1f} ms over 20 requests")
        self.assertLess(worst, 1000)
        self.assertEqual(len(silent), 300)

    def test_one_users_flood_is_capped_and_other_users_get_in(self):
        self.service = Service(config={"socket_mode": "0666",
                                       "limits": {"handshake_ms": 60000}})
        os.chmod(self.service.dir.name, 0o755)
        flood = subprocess.Popen([PYTHON, PEER, self.service.endpoint, "flood", "40"],
                                 user=NOBODY, group=NOBODY, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(PEER))
        try:
            report = json.loads(flood.stdout.readline())
            self.assertEqual(report["open"], 32, "max_sessions_per_user admits 32")
            self.assertEqual(report["refused"], ["DA_E_LIMIT_REACHED"] * 8)
            good = RawClient(self.service.endpoint)
            self.assertTrue(good.request({"id": 1, "op": "hello", "protocol": 1,
                                          "client_name": "Root", "pid": 1})["ok"])
            print(f"\nflood: nobody's 40 connections: 32 admitted, 8 refused; root answered in "
                  f"at most {self.answered_in_ms(good):.1f} ms")
        finally:
            flood.stdin.close()
            flood.wait(timeout=10)
            flood.stdout.close()

    def test_an_idle_session_holding_nothing_is_closed_and_a_holder_is_not(self):
        self.service = Service(config={"limits": {"idle_s": 1}})
        holder = RawClient(self.service.endpoint)
        self.assertTrue(holder.request({"id": 1, "op": "hello", "protocol": 1,
                                        "client_name": "Holder", "pid": 1})["ok"])
        self.assertTrue(holder.request({"id": 2, "op": "acquire", "drive": "sim0"})["ok"])
        idle = RawClient(self.service.endpoint)
        self.assertTrue(idle.request({"id": 1, "op": "hello", "protocol": 1,
                                      "client_name": "Idle", "pid": 1})["ok"])
        start = time.monotonic()
        self.assertTrue(idle.closed_by_peer())
        print(f"\nidle limit 1 s: the idle session was closed after "
              f"{time.monotonic() - start:.2f} s")
        self.service.log.wait_for("idle for 1 s holding nothing")
        reply = holder.request({"id": 3, "op": "owner", "drive": "sim0"})
        self.assertEqual(reply["owner"]["client_name"], "Holder", "the holder's session lives on")


if __name__ == "__main__":
    unittest.main()
