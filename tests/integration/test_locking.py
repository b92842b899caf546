"""Exclusive access across real processes: counts, LOCKED, waits, SIGKILL."""
import json
import os
import signal
import subprocess
import time
import unittest

from harness import DISCARB, LineReader, RawClient, Service


class Locking(unittest.TestCase):
    def setUp(self):
        self.service = Service(simulate=2)

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0, "discarbiterd exits 0 on SIGTERM")

    def test_hold_with_count_2_shows_lock_count_2(self):
        p, out = self.service.hold("sim0", "Demo", "--count", "2")
        out.wait_for("acquired sim0")
        r = self.service.discarb("--json", "owner", "sim0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"lock_count": 2', r.stdout)
        status = self.service.status()
        self.assertEqual(status["drives"][0]["owner"]["client_name"], "Demo")
        self.assertEqual(status["drives"][0]["owner"]["pid"], p.pid)
        clients = {c["client_name"]: c for c in status["clients"]}
        self.assertEqual(clients["Demo"]["locks"], {"sim0": 2})
        p.stdin.close()  # hold releases both and exits
        self.assertEqual(p.wait(timeout=10), 0)
        self.assertIsNone(self.service.status()["drives"][0]["owner"])

    def test_second_client_fails_at_once_with_exit_3(self):
        p, out = self.service.hold("sim0", "Owner")
        out.wait_for("acquired sim0")
        start = time.monotonic()
        r = self.service.discarb("hold", "sim0", "--name", "Intruder")
        took = time.monotonic() - start
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("E_IMAPI_RECORDER_LOCKED", r.stderr)
        self.assertIn("Owner", r.stderr, "the error names the owner")
        self.assertLess(took, 2.0, "fails at once, without waiting")
        self.assertEqual(self.service.status()["drives"][0]["owner"]["client_name"], "Owner")
        p.kill()
        p.wait()

    def test_waiter_is_granted_when_the_owner_is_sigkilled(self):
        owner, owner_out = self.service.hold("sim0", "Owner")
        owner_out.wait_for("acquired sim0")
        waiter, waiter_out = self.service.hold("sim0", "Waiter", "--wait", "20")
        self.service.log.wait_for("waiting drive=sim0 client='Waiter'")
        start = time.monotonic()
        os.kill(owner.pid, signal.SIGKILL)
        waiter_out.wait_for("acquired sim0", timeout=10)
        handoff_ms = (time.monotonic() - start) * 1000
        print(f"\nhand-off after SIGKILL of the owner: {handoff_ms:.1f} ms")
        self.assertLess(handoff_ms, 1000)
        owner.wait()
        status = self.service.status()
        self.assertEqual(status["drives"][0]["owner"]["client_name"], "Waiter")
        self.assertEqual(status["drives"][0]["waiters"], [])
        waiter.stdin.close()
        self.assertEqual(waiter.wait(timeout=10), 0)

    def test_a_wait_that_expires_fails_with_locked(self):
        owner, out = self.service.hold("sim0", "Owner")
        out.wait_for("acquired sim0")
        start = time.monotonic()
        r = self.service.discarb("hold", "sim0", "--name", "Patient", "--wait", "0.5")
        took = time.monotonic() - start
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("waited 500 ms", r.stderr)
        self.assertGreaterEqual(took, 0.5)
        self.assertEqual(self.service.status()["drives"][0]["waiters"], [])
        owner.kill()
        owner.wait()

    def test_sigkilled_owner_frees_the_drive_and_its_tray(self):
        owner, out = self.service.hold("sim1", "Doomed", "--count", "3")
        out.wait_for("acquired sim1")
        self.assertTrue(self.service.status()["drives"][1]["tray_locked"])
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        self.service.log.wait_for("freed drive=sim1 client='Doomed'")
        drive = self.service.status()["drives"][1]
        self.assertIsNone(drive["owner"])
        self.assertFalse(drive["tray_locked"])

    def test_an_invalid_client_name_is_refused(self):
        r = self.service.discarb("hold", "sim0", "--name", "bad/name")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("E_IMAPI_RECORDER_CLIENT_NAME_IS_NOT_VALID", r.stderr)
        r = self.service.discarb("hold", "sim0", "--name", "x" * 64)
        self.assertIn("E_IMAPI_RECORDER_CLIENT_NAME_IS_NOT_VALID", r.stderr)

    def test_release_without_a_lock_is_not_locked(self):
        c = RawClient(self.service.endpoint)
        self.assertTrue(c.request({"id": 1, "op": "hello", "protocol": 1, "client_name": "Raw", "pid": 1})["ok"])
        reply = c.request({"id": 2, "op": "release", "drive": "sim0"})
        self.assertEqual(reply["error"]["name"], "HRESULT_FROM_WIN32(ERROR_NOT_LOCKED)")
        self.assertEqual(reply["error"]["code"], 0x8007009E)
        self.assertEqual(reply["id"], 2)
        c.close()

    def test_an_unknown_drive_exits_5(self):
        r = self.service.discarb("hold", "sim9", "--name", "Demo")
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertIn("HRESULT_FROM_WIN32(ERROR_DEV_NOT_EXIST)", r.stderr)


class Unreachable(unittest.TestCase):
    def test_no_service_exits_6_with_a_clear_message(self):
        env = dict(os.environ, DISCARBITER_ENDPOINT="/nonexistent/discarbiter.sock")
        p = subprocess.run([DISCARB, "status"], env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 6)
        self.assertIn("DA_E_SERVICE_UNAVAILABLE", p.stderr)
        self.assertIn("is discarbiterd running?", p.stderr)


if __name__ == "__main__":
    unittest.main()


class Watch(unittest.TestCase):
    """`discarb watch`: the session's events, as they happen."""

    def setUp(self):
        self.service = Service(simulate=2)

    def tearDown(self):
        self.assertEqual(self.service.stop(), 0)

    def start_watch(self, *args):
        watch, events = self.service.spawn(*args, "watch")
        errors = LineReader(watch.stderr)
        errors.wait_for("watching events")  # subscribed: nothing after this is missed
        return watch, events, errors

    def test_watch_prints_each_lock_event_as_it_happens(self):
        watch, events, errors = self.start_watch()
        holder, out = self.service.hold("sim0", "Burner")
        out.wait_for("acquired sim0")
        line = events.wait_for("sim0: acquired by 'Burner'")
        self.assertIn(f"pid {holder.pid}", line)
        waiter, waiter_out = self.service.hold("sim0", "Waiter", "--wait", "20")
        self.service.log.wait_for("waiting drive=sim0 client='Waiter'")
        holder.stdin.close()
        events.wait_for("sim0: released by 'Burner'")
        events.wait_for("sim0: granted from the queue by 'Waiter'")
        waiter.stdin.close()
        self.assertEqual(waiter.wait(timeout=10), 0)
        line = events.wait_for("sim0: released by 'Waiter'")
        self.assertNotIn("session ended", line, "Waiter released it itself")
        dying, dying_out = self.service.hold("sim1", "Doomed")
        dying_out.wait_for("acquired sim1")
        dying.kill()
        line = events.wait_for("sim1: released by 'Doomed' (session")
        self.assertIn("its session ended (the client exited or died)", line)
        watch.stdin.close()
        self.assertEqual(watch.wait(timeout=10), 0)
        errors.wait_for("stopped watching (stdin closed)")

    def test_watch_json_prints_one_event_object_per_line(self):
        watch, events, _ = self.start_watch("--json")
        r = self.service.discarb("exec", "sim1", "--name", "Prober", "--cdb", "00 00 00 00 00 00")
        self.assertEqual(r.returncode, 0, r.stderr)
        acquired = json.loads(events.wait_for('"event":"acquired"'))
        self.assertEqual((acquired["drive"], acquired["owner"]["client_name"]), ("sim1", "Prober"))
        released = json.loads(events.wait_for('"event":"released"'))
        self.assertEqual((released["drive"], released["client_name"], released["cause"]),
                         ("sim1", "Prober", "released"))
        watch.send_signal(signal.SIGTERM)
        self.assertEqual(watch.wait(timeout=10), 0)

    def test_watch_ends_with_exit_6_when_the_service_stops(self):
        watch, _, errors = self.start_watch()
        self.service.proc.send_signal(signal.SIGTERM)  # N.B. stop() would kill the watch first
        self.assertEqual(watch.wait(timeout=10), 6)
        errors.wait_for("DA_E_CONNECTION_LOST")
        self.assertEqual(self.service.proc.wait(timeout=15), 0)
