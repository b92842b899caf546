"""Service faults: the service SIGKILLed while locks are held and waits are
queued. Every client hears of it at once (no hang), and a restarted service
starts with every drive free and its tray unlocked."""
import os
import signal
import tempfile
import time
import unittest

from harness import RawClient, Service


class ServiceKilled(unittest.TestCase):
    def test_sigkill_with_locks_and_waits_every_client_told_and_restart_is_clean(self):
        with tempfile.TemporaryDirectory(prefix="discarbiter-fault-") as d:
            endpoint = os.path.join(d, "discarbiter.sock")
            service = Service(endpoint=endpoint)
            holders = [service.hold("sim0", "Holder", "--count", "2"),
                       service.hold("sim1", "Other")]
            for _, out in holders:
                out.wait_for("acquired")
            waiters = [service.hold("sim0", f"Waiter{i}", "--wait", "60") for i in range(3)]
            raw = RawClient(endpoint)
            raw.request({"id": 1, "op": "hello", "protocol": 1, "client_name": "Raw", "pid": 1})
            raw.request({"id": 2, "op": "subscribe"})
            for _ in waiters:  # N.B. they queue in whatever order they connect
                service.log.wait_for("waiting drive=sim0 client='Waiter")
            self.assertEqual(len(service.status()["drives"][0]["waiters"]), 3)

            killed = time.monotonic()
            service.proc.send_signal(signal.SIGKILL)
            service.proc.wait(timeout=10)
            slowest = 0.0
            for proc, _ in holders + waiters:
                code = proc.wait(timeout=10)
                slowest = max(slowest, time.monotonic() - killed)
                err = proc.stderr.read().decode()
                self.assertEqual(code, 6, err)
                self.assertIn("DA_E_CONNECTION_LOST", err)
            self.assertTrue(raw.closed_by_peer())
            print(f"\nservice SIGKILLed: 2 holders and 3 waiters all exited 6 within "
                  f"{slowest * 1000:.0f} ms")

            # A client that connects now is told the service is not there.
            service.children.clear()
            r = service.discarb("status")
            self.assertEqual(r.returncode, 6, r.stderr)
            self.assertIn("DA_E_SERVICE_UNAVAILABLE", r.stderr)
            service.stop()

            again = Service(endpoint=endpoint)  # N.B. the stale socket file is replaced
            try:
                for drive in again.status()["drives"]:
                    self.assertEqual((drive["state"], drive["lock_state"], drive["tray_locked"],
                                      drive["owner"], drive["waiters"]),
                                     ("free", "free", False, None, []), drive["id"])
                p, out = again.hold("sim0", "AfterRestart")
                out.wait_for("acquired sim0")
            finally:
                self.assertEqual(again.stop(), 0)


if __name__ == "__main__":
    unittest.main()
