"""`discarb` behaves like the tools people know (issue 13 item 6): global
options after the verb, --version, unknown verbs named, --json honoured or
refused, help text for every argument, invalid numbers refused with their
range, each error printed once."""
import json
import os
import re
import subprocess
import unittest

from harness import DISCARB, Service

VERBS = "status, drives, owner, hold, exec, inquiry, eject, watch, break"
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(DiscArbiter VERSION ([0-9.]+)", f.read()).group(1)


def run(*args, env=None):
    """discarb with no service reachable unless `env` says where."""
    env = env or dict(os.environ, DISCARBITER_ENDPOINT="/nonexistent/discarbiter.sock")
    return subprocess.run([DISCARB, *args], env=env, capture_output=True, text=True, timeout=30)


class WithoutAService(unittest.TestCase):
    """What discarb answers before it connects."""

    def assertUsageError(self, r, message):
        self.assertEqual((r.returncode, r.stdout, r.stderr), (2, "", f"discarb: {message}\n"))

    def test_version_prints_the_projects_version(self):
        r = run("--version")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, f"discarb {project_version()}\n", ""))

    def test_an_unknown_verb_is_named_with_the_list_of_verbs(self):
        self.assertUsageError(run("frob"), f"unknown verb 'frob'; verbs: {VERBS}")
        self.assertUsageError(run("--json", "frob", "sim0"), f"unknown verb 'frob'; verbs: {VERBS}")
        self.assertUsageError(run(), f"a verb is required; verbs: {VERBS}")
        self.assertUsageError(run("--json"), f"a verb is required; verbs: {VERBS}")

    def test_what_no_verb_takes_is_refused_with_its_verb(self):
        self.assertUsageError(run("status", "--bogus"), "status: unexpected argument '--bogus'")
        self.assertUsageError(run("owner", "sim0", "extra"), "owner: unexpected argument 'extra'")
        self.assertUsageError(run("status", "drives"), "status: unexpected argument 'drives'")
        self.assertUsageError(run("owner"), "owner: drive is required")
        self.assertUsageError(run("exec", "sim0"), "exec: --cdb is required")

    def test_invalid_numbers_are_refused_naming_the_option_and_its_range(self):
        hold = ("hold", "sim0", "--name", "N")
        inquiry = ("exec", "sim0", "--cdb", "12 00 00 00 24 00")
        wait = "a number of seconds from 0 to 4294967"
        count = "a whole number of locks from 1 to 1000"
        length = "a whole number of bytes from 1 to 4294967295"
        timeout = "a whole number of seconds from 1 to 86400"
        cases = [(hold, "--wait", value, wait) for value in ("-1", "abc", "nan", "4294968")]
        cases += [(hold, "--count", value, count) for value in ("0", "1001", "2.5")]
        cases += [(inquiry, "--in", value, length) for value in ("99999999999", "0")]
        cases += [(inquiry, "--timeout", value, timeout) for value in ("0", "-5")]
        for args, option, value, valid in cases:
            with self.subTest(option=option, value=value):
                self.assertUsageError(run(*args, option, value),
                                      f"{args[0]}: {option}: '{value}' is not {valid}")

    def test_every_option_and_positional_has_help_text(self):
        for verb in [None, *VERBS.split(", ")]:
            r = run(*([verb] if verb else []), "--help")
            self.assertEqual((r.returncode, r.stderr), (0, ""), verb)
            lines = r.stdout.splitlines()
            entries = 0
            for i, line in enumerate(lines):
                if not re.match(r"^  \S", line):
                    continue  # not an entry of Positionals/Options/Verbs
                entries += 1
                # Help text on the same line after the name, or on the next
                # line when the name fills the first column.
                same_line = re.match(r"^  \S.{0,26}?\s{2,}\S", line)
                next_line = i + 1 < len(lines) and re.match(r"^ {30}\S", lines[i + 1])
                self.assertTrue(same_line or next_line, f"{verb}: no help text for {line.strip()!r}")
            self.assertGreater(entries, 0, r.stdout)
        self.assertIn("the drive's id", run("hold", "--help").stdout)


class WithAService(unittest.TestCase):
    def setUp(self):
        self.service = Service(simulate=2)

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def discarb(self, *args):
        return self.service.discarb(*args)

    def test_global_options_are_accepted_after_the_verb(self):
        before, after = self.discarb("--json", "drives"), self.discarb("drives", "--json")
        self.assertEqual((after.returncode, after.stderr), (0, ""))
        self.assertEqual([d["id"] for d in json.loads(after.stdout)], ["sim0", "sim1"])
        self.assertEqual(json.loads(before.stdout), json.loads(after.stdout))
        status = self.discarb("status", "--json")
        self.assertEqual((status.returncode, status.stderr), (0, ""))
        self.assertEqual(json.loads(status.stdout)["service"]["protocol"], 1)
        # --endpoint after the verb wins over an environment that points nowhere.
        r = run("drives", "--endpoint", self.service.endpoint)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertRegex(r.stdout, r"^sim0 ")
        r = run("owner", "sim1", "--json", "--endpoint", self.service.endpoint)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "null\n", ""))

    def test_json_is_honoured_by_every_verb_that_prints_data(self):
        holder, out = self.service.hold("sim1", "Holder")
        out.wait_for("acquired sim1")
        owner = json.loads(self.discarb("owner", "sim1", "--json").stdout)
        self.assertEqual((owner["client_name"], owner["lock_count"]), ("Holder", 1))
        r = self.discarb("exec", "sim0", "--cdb", "12 00 00 00 24 00", "--in", "36", "--json")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        reply = json.loads(r.stdout)
        self.assertEqual((reply["name"], reply["scsi_status"]), ("S_OK", 0))
        self.assertEqual(bytes.fromhex(reply["data"])[8:15], b"DISCARB")
        r = self.discarb("inquiry", "sim0", "--json")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        inquiry = json.loads(r.stdout)
        self.assertEqual((inquiry["vendor"], inquiry["device_type"]), ("DISCARB", 5))
        if os.geteuid() == 0:
            r = self.discarb("break", "sim1", "--json")
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            self.assertEqual(json.loads(r.stdout)["client_name"], "Holder")
            self.assertEqual(holder.wait(timeout=10), 3)
        else:
            print("\nbreak --json: NOT RUN (needs root: only administrators may break)")

    def test_json_is_refused_where_it_means_nothing_and_nothing_is_done(self):
        before = self.service.status()["drives"][0]["stats"]["commands"]
        r = self.discarb("hold", "sim0", "--name", "Quiet", "--json")
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertEqual(r.stderr, "discarb: hold: --json is not accepted: hold prints only "
                                   "'acquired DRIVE' (see 'discarb --json owner DRIVE')\n")
        r = self.discarb("--json", "eject", "sim0")
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (2, "", "discarb: eject: --json is not accepted: eject prints no data\n"))
        self.assertIsNone(self.service.status()["drives"][0]["owner"])
        self.assertEqual(self.service.status()["drives"][0]["stats"]["commands"], before,
                         "no command reached the drive")

    def test_inquiry_shows_the_current_profile_through_the_mmc_helpers(self):
        r = self.discarb("inquiry", "sim0")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        first, second = r.stdout.splitlines()
        self.assertEqual(first, "sim0: vendor 'DISCARB' product 'Simulated MMC' revision '0001' "
                                "(device type 5)")
        self.assertRegex(second, r"^sim0: medium (DVD\+RW \(profile 0x001A\)|BD-RE \(profile 0x0043\))")
        medium = json.loads(self.discarb("inquiry", "sim0", "--json").stdout)["medium"]
        self.assertIn((medium["profile"], medium["profile_name"]), [(0x1A, "DVD+RW"), (0x43, "BD-RE")])

    def assertOneErrorLine(self, r, code, *parts):
        self.assertEqual((r.returncode, r.stdout), (code, ""), r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("discarb: "), r.stderr)
        for part in parts:
            self.assertEqual(r.stderr.count(part), 1, f"{part!r} once in {r.stderr!r}")

    def test_each_error_is_printed_once(self):
        self.assertOneErrorLine(self.discarb("hold", "sim0", "--name", "bad/name"), 2,
                                "E_IMAPI_RECORDER_CLIENT_NAME_IS_NOT_VALID",
                                "client names are 1-63 characters", "'bad/name'")
        self.assertOneErrorLine(self.discarb("owner", "sim9"), 5,
                                "HRESULT_FROM_WIN32(ERROR_DEV_NOT_EXIST)", "'sim9'")
        holder, out = self.service.hold("sim0", "Demo")
        out.wait_for("acquired sim0")
        self.assertOneErrorLine(self.discarb("hold", "sim0", "--name", "Other"), 3,
                                "E_IMAPI_RECORDER_LOCKED", "held by 'Demo'")
        self.assertOneErrorLine(run("status"), 6, "DA_E_SERVICE_UNAVAILABLE")


if __name__ == "__main__":
    unittest.main()
