"""The service as a whole: timeouts that hurt nobody else, the status
document, bad input, configuration errors, orderly stop."""
import json
import re
import subprocess
import threading
import time
import unittest

from harness import DISCARBITERD, RawClient, Service, encode_frame

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def check_fields(test, obj, fields, where):
    """fields: name -> type or tuple of types (None allowed where listed)."""
    for name, types in fields.items():
        test.assertIn(name, obj, f"{where}.{name} missing")
        test.assertIsInstance(obj[name], types, f"{where}.{name} has type {type(obj[name]).__name__}")


class SlowDrive(unittest.TestCase):
    def setUp(self):
        # sim1 takes 5 s to answer INQUIRY; commands below ask for 1 s.
        self.service = Service(simulate=2, config={"simulated_faults": {"sim1": {"delay_ms": {"0x12": 5000}}}})

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def test_a_timed_out_command_fails_with_timeout_and_nobody_else_waits(self):
        result = {}

        def slow():
            result["r"] = self.service.discarb("exec", "sim1", "--name", "Slow", "--cdb", "12 00 00 00 24 00",
                                               "--in", "36", "--timeout", "1")

        t = threading.Thread(target=slow)
        start = time.monotonic()
        t.start()
        self.service.log.wait_for("acquired drive=sim1 client='Slow'")
        # While sim1's command hangs: status and another drive answer at once.
        t0 = time.monotonic()
        status = self.service.status()
        status_ms = (time.monotonic() - t0) * 1000
        t0 = time.monotonic()
        other = self.service.discarb("inquiry", "sim0", "--name", "Fast")
        other_ms = (time.monotonic() - t0) * 1000
        t.join(timeout=30)
        took = time.monotonic() - start
        print(f"\nwhile sim1 hung: status answered in {status_ms:.1f} ms, sim0 INQUIRY in {other_ms:.1f} ms")
        self.assertEqual(status["drives"][1]["owner"]["client_name"], "Slow")
        self.assertEqual(other.returncode, 0, other.stderr)
        self.assertIn("DISCARB", other.stdout)
        self.assertLess(status_ms, 500)
        self.assertLess(other_ms, 500)
        r = result["r"]
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("E_IMAPI_RECORDER_COMMAND_TIMEOUT", r.stderr)
        self.assertGreaterEqual(took, 1.0)
        self.assertLess(took, 4.5, "the 1 s timeout, not the 5 s delay")
        drive = self.service.status()["drives"][1]
        self.assertEqual(drive["stats"]["timeouts"], 1)
        self.assertIsNone(drive["owner"], "exec released the drive")
        # The drive is in "error" until a TEST UNIT READY is answered again;
        # the other drive never was.
        self.assertEqual(drive["state"], "error")
        self.assertIn("0x12", drive["error"])
        self.assertEqual(drive["lock_state"], "free")
        self.assertEqual(self.service.status()["drives"][0]["state"], "free")
        tur = self.service.discarb("exec", "sim1", "--name", "Probe", "--cdb", "00 00 00 00 00 00")
        self.assertEqual(tur.returncode, 0, tur.stderr)
        drive = self.service.status()["drives"][1]
        self.assertEqual(drive["state"], "free")
        self.assertNotIn("error", drive)
        self.service.log.wait_for("drive_recovered drive=sim1")


class StatusDocument(unittest.TestCase):
    def setUp(self):
        self.service = Service(simulate=2)

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def test_status_json_follows_the_schema(self):
        owner, out = self.service.hold("sim0", "Schema", "--count", "2")
        out.wait_for("acquired sim0")
        waiter, _ = self.service.hold("sim0", "Queued", "--wait", "30")
        self.service.log.wait_for("waiting drive=sim0 client='Queued'")
        s = self.service.status()
        self.assertEqual(set(s), {"service", "drives", "clients"})
        check_fields(self, s["service"], {"version": str, "protocol": int, "pid": int, "platform": str,
                                          "endpoint": str, "uptime_s": (int, float)}, "service")
        self.assertEqual(s["service"]["platform"], "linux")
        self.assertEqual(s["service"]["endpoint"], self.service.endpoint)
        self.assertEqual(s["service"]["pid"], self.service.proc.pid)
        self.assertEqual([d["id"] for d in s["drives"]], ["sim0", "sim1"])
        for d in s["drives"]:
            check_fields(self, d, {"id": str, "path": str, "backend": str, "vendor": str, "product": str,
                                   "revision": str, "state": str, "max_transfer": int,
                                   "os_lock": str, "tray_locked": bool,
                                   "tray_persistent": bool, "owner": (dict, type(None)),
                                   "waiters": list, "stats": dict}, "drive")
            self.assertIn(d["state"], {"free", "owned", "removed", "error"})
            self.assertEqual(d["backend"], "simulated")
            self.assertEqual(d["os_lock"], "simulated")
            check_fields(self, d["stats"], {"commands": int, "timeouts": int, "errors": int}, "stats")
        o = s["drives"][0]["owner"]
        check_fields(self, o, {"client_name": str, "session": int, "pid": int, "user": str, "uid": int,
                               "exe": str, "lock_count": int, "since": str, "force": bool}, "owner")
        self.assertEqual((o["client_name"], o["pid"], o["lock_count"]), ("Schema", owner.pid, 2))
        self.assertRegex(o["since"], RFC3339)
        self.assertTrue(o["exe"].endswith("discarb"), o["exe"])
        w = s["drives"][0]["waiters"][0]
        check_fields(self, w, {"client_name": str, "session": int, "pid": int, "waiting_since": str,
                               "deadline": str}, "waiter")
        self.assertEqual((w["client_name"], w["pid"]), ("Queued", waiter.pid))
        self.assertRegex(w["deadline"], RFC3339)
        for c in s["clients"]:
            check_fields(self, c, {"session": int, "client_name": str, "pid": int, "user": str,
                                   "connected_since": str, "locks": dict}, "client")
        self.assertIn({"sim0": 2}, [c["locks"] for c in s["clients"]])

    def test_status_table_for_people(self):
        r = self.service.discarb("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("DRIVE", r.stdout)
        self.assertRegex(r.stdout, r"sim0\s+free")
        self.assertRegex(r.stdout, r"sim1\s+free")

    def test_drives_lists_each_drive(self):
        r = self.service.discarb("drives")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("sim0", r.stdout)
        self.assertIn("DISCARB Simulated MMC 0001", r.stdout)


class BadInput(unittest.TestCase):
    def setUp(self):
        self.service = Service(simulate=1)

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def hello(self, c, name="Raw"):
        reply = c.request({"id": 1, "op": "hello", "protocol": 1, "client_name": name, "pid": 1})
        self.assertTrue(reply["ok"], reply)

    def test_a_request_before_hello_is_refused_and_closed(self):
        c = RawClient(self.service.endpoint)
        reply = c.request({"id": 1, "op": "acquire", "drive": "sim0"})
        self.assertEqual(reply["error"]["name"], "DA_E_HELLO_REQUIRED")
        self.assertTrue(c.closed_by_peer())

    def test_an_unsupported_protocol_is_refused_clearly(self):
        c = RawClient(self.service.endpoint)
        reply = c.request({"id": 1, "op": "hello", "protocol": 2, "client_name": "Future", "pid": 1})
        self.assertEqual(reply["error"]["name"], "DA_E_UNSUPPORTED_PROTOCOL")
        self.assertIn("protocol 2", reply["error"]["message"])
        self.assertTrue(c.closed_by_peer())

    def test_bad_requests_get_errors_and_the_session_goes_on(self):
        c = RawClient(self.service.endpoint)
        self.hello(c)
        self.assertEqual(c.request({"id": 2, "op": "acquire"})["error"]["name"], "E_INVALIDARG")
        self.assertEqual(c.request({"id": 3, "op": "warp"})["error"]["name"], "DA_E_UNKNOWN_REQUEST")
        self.assertEqual(c.request({"id": 4, "op": "acquire", "drive": "sim0", "wait_ms": "soon"})["error"]["name"],
                         "E_INVALIDARG")
        reply = c.request({"id": 5, "op": "acquire", "drive": "sim0"})
        self.assertEqual((reply["id"], reply["ok"], reply["lock_count"]), (5, True, 1))

    def test_a_malformed_frame_closes_the_session_and_frees_its_lock(self):
        c = RawClient(self.service.endpoint)
        self.hello(c, "Sloppy")
        self.assertTrue(c.request({"id": 2, "op": "acquire", "drive": "sim0"})["ok"])
        body = b"[1, 2, 3]"
        c.send(len(body).to_bytes(4, "little") + (0).to_bytes(4, "little") + body)
        reply = c.read_frame()
        self.assertEqual(reply["error"]["name"], "DA_E_BAD_FRAME")
        self.assertTrue(c.closed_by_peer())
        self.service.log.wait_for("freed drive=sim0 client='Sloppy'")
        self.assertIsNone(self.service.status()["drives"][0]["owner"])

    def test_an_oversize_frame_is_refused_before_it_arrives(self):
        c = RawClient(self.service.endpoint)
        self.hello(c)
        c.send((1 << 30).to_bytes(4, "little") + (0).to_bytes(4, "little"))
        reply = c.read_frame()
        self.assertEqual(reply["error"]["name"], "DA_E_FRAME_TOO_LARGE")
        self.assertTrue(c.closed_by_peer())
        self.assertEqual(self.service.status()["service"]["protocol"], 1, "the service lives on")

    def test_a_silent_connection_is_closed_after_the_handshake_deadline(self):
        c = RawClient(self.service.endpoint)
        start = time.monotonic()
        self.assertTrue(c.closed_by_peer())
        self.assertLess(time.monotonic() - start, 5.0)

    def test_execute_by_a_non_owner_is_locked(self):
        c = RawClient(self.service.endpoint)
        self.hello(c)
        reply = c.request({"id": 2, "op": "execute", "drive": "sim0", "cdb": "120000002400", "direction": "in",
                           "data_in_len": 36})
        self.assertEqual(reply["error"]["name"], "E_IMAPI_RECORDER_LOCKED")

    def test_execute_carries_data_in_as_payload_and_sense_with_its_code(self):
        c = RawClient(self.service.endpoint)
        self.hello(c)
        self.assertTrue(c.request({"id": 2, "op": "acquire", "drive": "sim0"})["ok"])
        c.send(encode_frame({"id": 3, "op": "execute", "drive": "sim0", "cdb": "120000002400", "direction": "in",
                             "data_in_len": 36}))
        header = c.read_exact(8)
        json_len, payload_len = int.from_bytes(header[:4], "little"), int.from_bytes(header[4:], "little")
        reply = json.loads(c.read_exact(json_len))
        payload = c.read_exact(payload_len)
        self.assertEqual((reply["ok"], reply["scsi_status"], reply["data_len"]), (True, 0, 36))
        self.assertEqual(payload[8:15], b"DISCARB")
        reply = c.request({"id": 4, "op": "execute", "drive": "sim0", "cdb": "1B0000000200"})
        self.assertEqual(reply["scsi_status"], 2)
        self.assertEqual(reply["name"], "S_IMAPI_COMMAND_HAS_SENSE_DATA")
        self.assertEqual(reply["sense"][4:6], "05")
        self.assertGreaterEqual(len(reply["sense"]), 36, "at least 18 bytes of sense")


class Configuration(unittest.TestCase):
    def run_with(self, config):
        import os
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "discarbiter.json")
            with open(path, "w") as f:
                f.write(config)
            return subprocess.run([DISCARBITERD, "run", "--config", path, "--endpoint", os.path.join(d, "s")],
                                  capture_output=True, text=True, timeout=30)

    def test_an_unknown_key_stops_start_up_naming_the_key(self):
        r = self.run_with('{"limits": {"max_sesions": 4}}')
        self.assertEqual(r.returncode, 2)
        self.assertIn("limits.max_sesions is not a known key", r.stderr)

    def test_an_ill_typed_key_stops_start_up_naming_the_key(self):
        r = self.run_with('{"tray_lock": "on"}')
        self.assertEqual(r.returncode, 2)
        self.assertIn("tray_lock must be true or false", r.stderr)

    def test_a_group_that_does_not_exist_stops_start_up_naming_the_key(self):
        for key in ("socket_group", "admin_group"):
            r = self.run_with(json.dumps({key: "no-such-group-here", "simulate": 1}))
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f"{key} 'no-such-group-here' is not a group on this system", r.stderr)

    def test_invalid_json_is_named(self):
        r = self.run_with('{"tray_lock": ')
        self.assertEqual(r.returncode, 2)
        self.assertIn("is not valid JSON", r.stderr)


class Shutdown(unittest.TestCase):
    def test_sigterm_releases_held_locks_and_exits_0(self):
        service = Service(simulate=1)
        owner, out = service.hold("sim0", "Holder")
        out.wait_for("acquired sim0")
        self.assertEqual(service.stop(), 0)


if __name__ == "__main__":
    unittest.main()
