"""The Debian packages (cmake/Debian.cmake): cpack builds discarbiter and
discarbiter-dev from the build tree; their control fields, their files and
lintian's verdict (no errors; its warnings are printed)."""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from sdk import BUILD_DIR, CPACK, run

VERSION = "0.1.0"


class DebianPackages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="discarbiter-deb.")
        done = run([CPACK, "-G", "DEB", "--config", os.path.join(BUILD_DIR, "CPackConfig.cmake"),
                    "-B", cls.tmp], timeout=280)
        assert done.returncode == 0, done.stdout + done.stderr
        cls.runtime = os.path.join(cls.tmp, f"discarbiter_{VERSION}_amd64.deb")
        cls.dev = os.path.join(cls.tmp, f"discarbiter-dev_{VERSION}_amd64.deb")
        assert os.path.isfile(cls.runtime) and os.path.isfile(cls.dev), glob.glob(cls.tmp + "/*")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def field(self, deb, name):
        done = run(["dpkg-deb", "-f", deb, name])
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout.strip()

    def contents(self, deb):
        done = run(["dpkg-deb", "-c", deb])
        self.assertEqual(done.returncode, 0, done.stderr)
        # "-rw-r--r-- root/root 123 2026-… ./usr/bin/discarb" or "… ./x -> y"
        return {line.split(" ./", 1)[1].split(" -> ")[0]: line
                for line in done.stdout.splitlines() if " ./" in line}

    def test_runtime_package(self):
        self.assertEqual(self.field(self.runtime, "Package"), "discarbiter")
        self.assertEqual(self.field(self.runtime, "Version"), VERSION)
        self.assertEqual(self.field(self.runtime, "Architecture"), "amd64")
        depends = self.field(self.runtime, "Depends")
        # dpkg-shlibdeps computed them from the binaries.
        self.assertRegex(depends, r"\blibc6 \(>= ")
        self.assertRegex(depends, r"\blibstdc\+\+6 \(>= ")
        files = self.contents(self.runtime)
        for path in ("usr/sbin/discarbiterd", "usr/bin/discarb", "lib/systemd/system/discarbiterd.service",
                     "etc/discarbiter/discarbiter.json", "usr/share/doc/discarbiter/copyright",
                     "usr/share/doc/discarbiter/README.md"):
            self.assertTrue(path in files or "usr/" + path in files, f"{path} not in {sorted(files)}")
        libs = [p for p in files if re.search(r"lib/(.*/)?libdiscarbiter\.so\.0(\.1\.0)?$", p)]
        self.assertEqual(len(libs), 2, f"the library and its SONAME link: {sorted(files)}")
        self.assertFalse([p for p in files if p.startswith("usr/include") or p.endswith(".a")
                          or p.endswith("libdiscarbiter.so")], "development files in the runtime package")
        control = run(["dpkg-deb", "--ctrl-tarfile", self.runtime])
        self.assertEqual(control.returncode, 0)

    def test_dev_package(self):
        self.assertEqual(self.field(self.dev, "Package"), "discarbiter-dev")
        self.assertIn(f"discarbiter (= {VERSION})", self.field(self.dev, "Depends"))
        files = self.contents(self.dev)
        for suffix in ("include/discarbiter/discarbiter.h", "include/discarbiter/client.hpp",
                       "include/discarbiter/proto/errors.hpp", "libdiscarbiter.so", "libdiscarbiter.a",
                       "pkgconfig/discarbiter.pc", "cmake/DiscArbiter/DiscArbiterConfig.cmake"):
            self.assertTrue([p for p in files if p.endswith(suffix)], f"{suffix} not in {sorted(files)}")
        self.assertFalse([p for p in files if "libdiscarbiter.so.0" in p], "the runtime library twice")

    def test_installed_paths_are_the_packages(self):
        root = os.path.join(self.tmp, "root")
        for deb in (self.runtime, self.dev):
            self.assertEqual(run(["dpkg-deb", "-x", deb, root]).returncode, 0)
        (unit,) = glob.glob(os.path.join(root, "**/systemd/system/discarbiterd.service"), recursive=True)
        with open(unit) as f:
            self.assertIn("ExecStart=/usr/sbin/discarbiterd run --config /etc/discarbiter/discarbiter.json",
                          f.read())
        (pc,) = glob.glob(os.path.join(root, "usr/lib/**/discarbiter.pc"), recursive=True)
        with open(pc) as f:
            self.assertIn("prefix=/usr\n", f.read())
        (lib,) = glob.glob(os.path.join(root, "usr/lib/**/libdiscarbiter.so.0.1.0"), recursive=True)
        self.assertRegex(run(["objdump", "-p", lib]).stdout, r"SONAME\s+libdiscarbiter\.so\.0\n")
        # The packaged CLI runs (statically linked to the client library).
        done = run([os.path.join(root, "usr/bin/discarb"), "--help"])
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_lintian_finds_no_errors(self):
        if shutil.which("lintian") is None:
            self.fail("lintian is missing: scripts/setup installs it")
        for deb in (self.runtime, self.dev):
            with self.subTest(deb=os.path.basename(deb)):
                # N.B. lintian's exit status is 1 for errors and 2 for a
                # failure of its own; its warnings are printed, not fatal.
                done = subprocess.run(["lintian", "--no-tag-display-limit", deb],
                                      capture_output=True, text=True, timeout=240)
                print(f"lintian {os.path.basename(deb)}:\n{done.stdout}{done.stderr}")
                errors = [line for line in done.stdout.splitlines() if line.startswith("E:")]
                self.assertEqual(errors, [], "\n".join(errors))
                self.assertEqual(done.returncode, 0, done.stderr)


if __name__ == "__main__":
    unittest.main()
