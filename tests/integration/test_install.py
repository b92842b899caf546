"""`cmake --install` and the systemd unit (installer/linux): the tree it
lays out, `systemd-analyze verify` on the unit it writes, and the installed
default configuration starting the installed service."""
import grp
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import DISCARBITERD, LineReader

BUILD_DIR = os.path.dirname(os.path.dirname(DISCARBITERD))  # build/linux/service/discarbiterd


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="discarbiter-install.")
        cls.prefix = os.path.join(cls.tmp, "usr")
        done = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", cls.prefix],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        cls.unit = os.path.join(cls.prefix, "lib/systemd/system/discarbiterd.service")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_the_tree_has_binaries_unit_and_config(self):
        for path in ("sbin/discarbiterd", "bin/discarb"):
            self.assertTrue(os.access(os.path.join(self.prefix, path), os.X_OK), path)
        self.assertTrue(os.path.isfile(self.unit))
        self.assertTrue(os.path.isfile(os.path.join(self.prefix, "etc/discarbiter/discarbiter.json")))
        with open(self.unit) as f:
            unit = f.read()
        # The paths follow --prefix; the hardening the issue asks for is there.
        self.assertIn(f"ExecStart={self.prefix}/sbin/discarbiterd run --config {self.prefix}/etc/discarbiter/", unit)
        for line in ("RuntimeDirectory=discarbiter", "ProtectSystem=strict", "ProtectHome=yes",
                     "NoNewPrivileges=yes", "DevicePolicy=closed", "DeviceAllow=block-sr rw",
                     "DeviceAllow=char-sg rw", "Restart=on-failure"):
            self.assertIn(line + "\n", unit)

    def verify(self, unit_path):
        return subprocess.run(["systemd-analyze", "verify", unit_path], capture_output=True, text=True)

    def test_systemd_analyze_verify_accepts_the_unit(self):
        done = self.verify(self.unit)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertNotIn("discarbiterd.service:", done.stderr, "a warning about our unit")
        # The check is live: a misspelt key in a copy of the unit is reported.
        broken = os.path.join(self.tmp, "discarbiterd.service")
        with open(self.unit) as f, open(broken, "w") as out:
            out.write(f.read().replace("ProtectHome=yes", "ProtectHomme=yes"))
        self.assertIn("ProtectHomme", self.verify(broken).stderr)

    def test_the_installed_service_starts_with_the_installed_config(self):
        config = os.path.join(self.prefix, "etc/discarbiter/discarbiter.json")
        endpoint = os.path.join(self.tmp, "s.sock")
        proc = subprocess.Popen([os.path.join(self.prefix, "sbin/discarbiterd"), "run", "--config", config,
                                 "--endpoint", endpoint, "--no-discover"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            LineReader(proc.stderr).wait_for("listening on " + endpoint)
            # Burning apps run as users: the cdrom group's members get in.
            socket = os.stat(endpoint)
            self.assertEqual((socket.st_gid, socket.st_mode & 0o777),
                             (grp.getgrnam("cdrom").gr_gid, 0o660))
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=10), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
