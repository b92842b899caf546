"""The C ABI on Windows: tests/sdk's C program, cross-built against
discarbiter.dll's import library (tests/windows/CMakeLists.txt), run under
Wine against discarbiterd.exe in console mode on a pipe of its own, loading
discarbiter.dll from its directory."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from test_service_lifecycle import DISCARBITERD, WINE, LineReader  # noqa: E402

C_CONSUMER = os.environ["C_CONSUMER_EXE"]


class CAbiUnderWine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run([WINE, "--start"], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)

    def test_the_c_program_passes_through_the_dll(self):
        self.assertTrue(os.path.isfile(os.path.join(os.path.dirname(C_CONSUMER), "discarbiter.dll")))
        endpoint = f"\\\\.\\pipe\\discarbiter-c-abi-{os.getpid()}"
        service = subprocess.Popen([WINE, DISCARBITERD, "run", "--simulate", "2", "--endpoint", endpoint],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        try:
            LineReader(service.stderr).wait_for("listening on", timeout=60)
            done = subprocess.run([WINE, C_CONSUMER], stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=120,
                                  env=dict(os.environ, DISCARBITER_ENDPOINT=endpoint))
            print(done.stdout, done.stderr)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            self.assertIn("PASSED", done.stdout)
            self.assertIn("ok   INQUIRY", done.stdout)
        finally:
            service.terminate()
            try:
                service.wait(timeout=30)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()
            service.stderr.close()


if __name__ == "__main__":
    unittest.main()
