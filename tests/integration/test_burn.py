"""The sample burner (examples/burner) through the service to a simulated
recorder: a 64 MiB image written and verified; a drive another client holds;
an image larger than the medium; the burner SIGKILLed mid-burn."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import unittest
import zlib

from harness import LineReader, Service

BURN = os.environ.get("DISCARBITER_BURN", "discarbiter-burn")
MIB = 1024 * 1024
# sim0: an 80 MiB DVD+RW; sim1: an 80 MiB BD-RE at 20 MB/s (so a kill lands mid-burn); sim2: a
# DVD+RW that stores at most 1 MiB (a WRITE beyond that gets CHECK CONDITION 3/0C/00).
MEDIUM_MB = 80
CONFIG = {"simulated_media": {"*": {"profile": "dvd+rw", "size_mb": MEDIUM_MB},
                              "sim1": {"profile": "bd-re", "write_speed_mb_s": 20},
                              "sim2": {"max_stored_mb": 1}}}


class Burn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which(BURN) is None:
            # N.B. the asan and tsan build presets build only unit_tests, discarbiterd and discarb.
            print(f"\nburn: skipped: {BURN} is not built in this configuration")
            raise unittest.SkipTest(f"{BURN} is not built")

    def setUp(self):
        self.service = Service(simulate=3, config=CONFIG)
        self.dir = tempfile.TemporaryDirectory(prefix="discarbiter-burn-")

    def tearDown(self):
        self.dir.cleanup()
        self.assertEqual(self.service.stop(), 0, "discarbiterd exits 0 on SIGTERM")

    def image(self, size, seed=13):
        """A file of `size` pseudo-random bytes (the same ones every run)."""
        path = os.path.join(self.dir.name, f"image-{size}.iso")
        with open(path, "wb") as f:
            f.write(random.Random(seed).randbytes(size))
        return path

    def burn(self, *args, timeout=60):
        return subprocess.run([BURN, *args], env=self.service.env(), capture_output=True,
                              text=True, timeout=timeout)

    def spawn_burn(self, *args):
        p = subprocess.Popen([BURN, *args], env=self.service.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(), p.stdout.close(),
                                 p.stderr.close()))
        return p, LineReader(p.stdout)

    def drive(self, drive_id):
        return next(d for d in self.service.status()["drives"] if d["id"] == drive_id)

    def read_blocks(self, drive_id, lba, blocks):
        """READ(10) through discarb (which acquires and releases around it)."""
        cdb = bytes([0x28, 0, *lba.to_bytes(4, "big"), 0, *blocks.to_bytes(2, "big"), 0]).hex(" ")
        r = self.service.discarb("--json", "exec", drive_id, "--cdb", cdb, "--in",
                                 str(blocks * 2048))
        self.assertEqual(r.returncode, 0, r.stderr)
        return bytes.fromhex(json.loads(r.stdout)["data"])

    def test_burns_a_64_mib_image_and_verifies_it(self):
        path = self.image(64 * MIB)
        with open(path, "rb") as f:
            crc = zlib.crc32(f.read())
        r = self.burn("--name", "SampleBurner", "sim0", path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        wrote = re.search(r"^wrote 64\.0 MiB in ([0-9.]+) s: ([0-9.]+) MiB/s$", r.stdout, re.M)
        self.assertIsNotNone(wrote, r.stdout)
        verified = re.search(r"^verified 64\.0 MiB in [0-9.]+ s: [0-9.]+ MiB/s; "
                             r"CRC-32 (0x[0-9a-f]{8}) \(image\) = (0x[0-9a-f]{8}) \(disc\)$",
                             r.stdout, re.M)
        self.assertIsNotNone(verified, r.stdout)
        # The burner's figure is the image's CRC-32 as zlib computes it, and the disc's equals it.
        self.assertEqual(int(verified.group(1), 16), crc)
        self.assertEqual(verified.group(1), verified.group(2))
        self.assertIn("released sim0", r.stdout)
        self.assertEqual(r.stderr, "")
        drive = self.drive("sim0")
        self.assertEqual(drive["state"], "free")
        self.assertIsNone(drive["owner"])
        # The last block landed where it belongs (the image ends on a block boundary).
        with open(path, "rb") as f:
            f.seek(64 * MIB - 2048)
            self.assertEqual(self.read_blocks("sim0", 64 * MIB // 2048 - 1, 1), f.read())
        print(f"\nburn: 64 MiB image to sim0 through the service with discarbiter-burn: "
              f"{wrote.group(0)}; {verified.group(0).split('; ')[0]}")

    def test_a_short_last_chunk_is_padded_with_zeros(self):
        # N.B. two chunks: the buffer the last one reuses still holds the first one's bytes.
        size = MIB + 3 * 2048 + 100
        path = self.image(size, seed=7)
        r = self.burn("sim1", path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("to sim1: BD-RE (profile 0x0043), 80.0 MiB", r.stdout)
        self.assertIn("verified", r.stdout)
        with open(path, "rb") as f:
            f.seek(MIB)
            expected = f.read() + bytes(4 * 2048 - (size - MIB))
        self.assertEqual(self.read_blocks("sim1", MIB // 2048, 4), expected)

    def test_a_drive_held_by_another_client_is_exit_3(self):
        holder, out = self.service.hold("sim0", "Holder")
        out.wait_for("acquired sim0")
        r = self.burn("sim0", self.image(4096))
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("acquire sim0: E_IMAPI_RECORDER_LOCKED", r.stderr)
        self.assertEqual(r.stderr.count("E_IMAPI_RECORDER_LOCKED"), 1, "the error is printed once")
        self.assertEqual(self.drive("sim0")["owner"]["client_name"], "Holder")

    def test_an_image_larger_than_the_medium_is_refused_before_writing(self):
        medium = MEDIUM_MB * MIB
        path = os.path.join(self.dir.name, "too-big.iso")
        with open(path, "wb") as f:
            f.write(b"\xA5" * 4096)  # N.B. the rest is a hole: the burner refuses before reading it
            f.truncate(medium + 2048)
        r = self.burn("sim0", path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"too-big.iso is 80.0 MiB ({medium + 2048} bytes)", r.stderr)
        self.assertIn(f"holds 80.0 MiB ({medium} bytes)", r.stderr)
        self.assertNotIn("wrote", r.stdout)
        self.assertEqual(self.read_blocks("sim0", 0, 2), bytes(4096), "nothing was written")
        self.assertIsNone(self.drive("sim0")["owner"])

    def test_a_check_condition_is_reported_once_with_its_sense(self):
        r = self.burn("sim2", self.image(2 * MIB))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        # The first 1 MiB chunk is stored; the second is refused by the drive.
        self.assertEqual(r.stderr.strip().splitlines(), [
            "discarbiter-burn: WRITE(10) at LBA 512: S_IMAPI_COMMAND_HAS_SENSE_DATA: "
            "WRITE(10): sense 3/0C/00: write error"])
        self.assertIsNone(self.drive("sim2")["owner"], "the guard released the drive")

    def test_the_drive_is_freed_when_the_burner_is_killed_mid_burn(self):
        burner, out = self.spawn_burn("--name", "Doomed", "sim1", self.image(16 * MIB))
        out.wait_for("burning ")  # printed just before the first WRITE(10)
        burner.send_signal(signal.SIGKILL)
        self.assertEqual(burner.wait(timeout=10), -signal.SIGKILL, "killed before it finished")
        # N.B. the service's audit log: the lock ended with the session, not by a release.
        self.service.log.wait_for("session_ended drive=sim1 client='Doomed'")
        self.service.log.wait_for("freed drive=sim1 client='Doomed'")
        self.assertIsNone(self.drive("sim1")["owner"])

    def test_usage_errors_are_exit_2(self):
        for args in ([], ["sim0"], ["--wait", "-1", "sim0", "x.iso"], ["--bogus", "sim0", "x.iso"]):
            r = self.burn(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn("usage: discarbiter-burn", r.stderr)


if __name__ == "__main__":
    unittest.main()
