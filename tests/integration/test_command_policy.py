"""The command policy (docs/command-policy.md) with an ordinary user as a
second uid (nobody) next to root, and the tray preventions an owner may
leave (issue 11 findings 2 and 4)."""
import json
import os
import subprocess
import unittest

from harness import RawClient, Service

NOBODY = 65534
# N.B. the system's Python: one under /root (pyenv) is out of nobody's reach.
PYTHON = "/usr/bin/python3"
PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer.py")


def execute(cdb, direction="none", data_in_len=0):
    req = {"op": "execute", "drive": "sim0", "cdb": cdb, "direction": direction}
    if data_in_len:
        req["data_in_len"] = data_in_len
    return req


# What the kernel's SG_IO filter refuses to an ordinary user, one per class, and
# what the service refuses beyond it (state that would outlive the lock).
REFUSED = {
    0x3B: execute("3B050000000000100000"),                  # WRITE BUFFER (firmware download)
    0x1D: execute("1D0400000000"),                          # SEND DIAGNOSTIC
    0x85: execute("85080E0000000000000000000000EC00"),      # ATA PASS-THROUGH(16)
    0xC0: execute("C0000000000000000000"),                  # vendor-specific
    0x5F: execute("5F010000000000001800"),                  # PERSISTENT RESERVE OUT
    0xA3: execute("A30000000000000000000600"),              # SEND KEY, KEY FORMAT 06h (region)
    0x55: execute("55110000000000000000"),                  # MODE SELECT(10) with SP
}
# What burning, ripping and inspection need: each reaches the simulated drive.
ALLOWED = [
    execute("120000002400", "in", 36),                      # INQUIRY
    execute("28000000000000000100", "in", 2048),            # READ(10), one block
    execute("A11100000000000000000000"),                 # BLANK (0xA1 is BLANK on MMC)
    execute("55100000000000000000"),                        # MODE SELECT(10) without SP
]


def outcome(reply):
    return "ok" if reply["ok"] else reply["error"]["name"]


def sim0(status_reply):
    return status_reply["status"]["drives"][0]


@unittest.skipUnless(os.geteuid() == 0, "needs root to run a client as a second uid "
                     "(CI runs as root)")
class CommandPolicy(unittest.TestCase):
    def setUp(self):
        self.service = Service(config={"socket_mode": "0666"})
        os.chmod(self.service.dir.name, 0o755)  # N.B. so that nobody can reach the socket

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def as_nobody(self, requests):
        out = subprocess.run([PYTHON, PEER, self.service.endpoint, "requests", "Ordinary",
                              json.dumps(requests)], user=NOBODY, group=NOBODY,
                             capture_output=True, text=True, timeout=30,
                             cwd=os.path.dirname(PEER))
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def test_an_ordinary_user_gets_what_the_kernel_would_give_it(self):
        replies = self.as_nobody([{"op": "acquire", "drive": "sim0"}, {"op": "status"},
                                  *REFUSED.values(), {"op": "status"}, *ALLOWED,
                                  {"op": "status"}, {"op": "release", "drive": "sim0"}])
        self.assertEqual([outcome(r) for r in replies[:3]], ["ok", "ok", "ok"])
        before = sim0(replies[2])
        refused = replies[3:3 + len(REFUSED)]
        for opcode, reply in zip(REFUSED, refused):
            self.assertEqual(outcome(reply), "E_ACCESSDENIED", (hex(opcode), reply))
            self.assertIn(f"opcode 0x{opcode:02X}", reply["error"]["message"])
            self.assertIn("'nobody' is not one", reply["error"]["message"])
        self.assertIn("(WRITE BUFFER)", refused[0]["error"]["message"])
        self.assertIn("with SP", refused[-1]["error"]["message"])
        after_refused = sim0(replies[3 + len(REFUSED)])
        self.assertEqual(after_refused["stats"], before["stats"], "nothing reached the drive")
        self.assertEqual(after_refused["owner"]["lock_count"], 1, "the lock goes on")
        allowed = replies[4 + len(REFUSED):4 + len(REFUSED) + len(ALLOWED)]
        self.assertEqual([outcome(r) for r in allowed], ["ok"] * len(ALLOWED))
        self.assertEqual([r["name"] for r in allowed[:2]], ["S_OK", "S_OK"], "INQUIRY, READ(10)")
        after_allowed = sim0(replies[-2])
        self.assertEqual(after_allowed["stats"]["commands"],
                         before["stats"]["commands"] + len(ALLOWED), "each one reached the drive")
        self.assertEqual(outcome(replies[-1]), "ok", "release")
        print(f"\ncommand policy: nobody refused {[hex(op) for op in REFUSED]} with E_ACCESSDENIED, "
              f"{len(ALLOWED)} allowed commands reached the drive")

    def test_root_is_an_administrator_and_write_buffer_reaches_the_drive(self):
        root = RawClient(self.service.endpoint)
        self.assertTrue(root.request({"id": 1, "op": "hello", "protocol": 1,
                                      "client_name": "RootTool", "pid": 1})["ok"])
        self.assertTrue(root.request({"id": 2, "op": "acquire", "drive": "sim0"})["ok"])
        before = self.service.status()["drives"][0]["stats"]["commands"]
        for i, (opcode, req) in enumerate(REFUSED.items()):
            reply = root.request(dict(req, id=10 + i))
            self.assertNotEqual(outcome(reply), "E_ACCESSDENIED", (hex(opcode), reply))
            # The simulated drive knows none of them: its own answer, with sense.
            self.assertEqual(reply.get("name"), "S_IMAPI_COMMAND_HAS_SENSE_DATA", reply)
        after = self.service.status()["drives"][0]["stats"]["commands"]
        self.assertEqual(after, before + len(REFUSED))


class TrayPrevention(unittest.TestCase):
    """Neither of MMC's tray preventions outlives the lock of the owner that set it."""

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def owner(self):
        owner = RawClient(self.service.endpoint)
        self.assertTrue(owner.request({"id": 1, "op": "hello", "protocol": 1,
                                       "client_name": "Preventer", "pid": 1})["ok"])
        self.assertTrue(owner.request({"id": 2, "op": "acquire", "drive": "sim0"})["ok"])
        return owner

    def tray(self):
        drive = self.service.status()["drives"][0]
        return drive["tray_locked"], drive["tray_persistent"]

    def test_a_persistent_prevent_is_cleared_when_the_owners_session_ends(self):
        self.service = Service(config={"tray_lock": False})
        owner = self.owner()
        reply = owner.request(dict(execute("1E0000000300"), id=3))  # persistent prevent
        self.assertEqual(outcome(reply), "ok", reply)
        self.assertEqual(self.tray(), (True, True))
        owner.close()  # N.B. the session ends without a release
        self.service.log.wait_for("freed drive=sim0 client='Preventer'")
        self.assertEqual(self.tray(), (False, False))
        # The next owner can eject (tray_lock is off, so it adds no lock of
        # its own): the simulated drive refuses while either prevention is set.
        r = self.service.discarb("eject", "sim0", "--name", "Next", "--keep-tray-lock")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_a_persistent_allow_leaves_the_services_own_prevent_to_the_release(self):
        # 1E .. 02 is MMC's persistent ALLOW: bit 0 clear, yet the ordinary
        # prevention the service set at acquire (tray_lock) is still there.
        self.service = Service()
        owner = self.owner()
        self.assertEqual(self.tray(), (True, False))
        reply = owner.request(dict(execute("1E0000000200"), id=3))
        self.assertEqual(outcome(reply), "ok", reply)
        self.assertEqual(self.tray(), (True, False), "the tray is still locked")
        self.assertTrue(owner.request({"id": 4, "op": "release", "drive": "sim0"})["ok"])
        self.assertEqual(self.tray(), (False, False), "the release sent ALLOW")


if __name__ == "__main__":
    unittest.main()
