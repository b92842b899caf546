"""Out-of-tree programs against the installed SDK (the sdk_prefix fixture),
as a burning app's developer builds them: each with CMake's
find_package(DiscArbiter) and with pkg-config on a plain compiler command
line, then run against a live discarbiterd with two simulated drives. The
C program is C99 with -Werror -pedantic; the C++ one is also linked
statically; a Python ctypes script drives the C ABI through the installed
libdiscarbiter.so.0; the sample burner (examples/burner) burns and verifies
an 8 MiB image."""
import os
import shutil
import sys
import tempfile
import unittest

from sdk import CMAKE, HERE, PREFIX, SOURCE_DIR, Service, libdir, pkg_config, run


class Consumers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="discarbiter-sdk.")
        cls.service = Service(simulate=2)

    @classmethod
    def tearDownClass(cls):
        cls.service.stop()
        shutil.rmtree(cls.tmp)

    def env(self):
        # N.B. no LD_LIBRARY_PATH: the programs find the prefix's library by
        # their rpath, as an installed app would by its own.
        env = self.service.env()
        env.pop("LD_LIBRARY_PATH", None)
        return env

    def run_program(self, path):
        done = run([path], env=self.env(), timeout=60)
        self.assertEqual(done.returncode, 0, f"{path} failed:\n{done.stdout}{done.stderr}")
        self.assertIn("PASSED", done.stdout)
        # It ran against the installed library, not some other copy.
        done = run(["ldd", path])
        if "libdiscarbiter.so.0" in done.stdout:
            self.assertIn(os.path.join(libdir(), "libdiscarbiter.so.0"), done.stdout)

    def cmake_build(self, project, *options):
        source = os.path.join(HERE, project)
        build = os.path.join(self.tmp, project + "-cmake" + "".join(options))
        done = run([CMAKE, "-S", source, "-B", build, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={PREFIX}",
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo", *options])
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        done = run([CMAKE, "--build", build])
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        return os.path.join(build, project)

    def test_c_with_cmake(self):
        self.run_program(self.cmake_build("c_consumer"))

    def test_c_with_pkg_config(self):
        program = os.path.join(self.tmp, "c_consumer-pkg-config")
        done = run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                    os.path.join(HERE, "c_consumer/c_consumer.c"), *pkg_config("--cflags", "--libs"),
                    f"-Wl,-rpath,{libdir()}", "-o", program])
        self.assertEqual(done.returncode, 0, done.stderr)
        self.run_program(program)

    def test_cxx_with_cmake(self):
        self.run_program(self.cmake_build("cpp_consumer"))

    def test_cxx_with_pkg_config(self):
        program = os.path.join(self.tmp, "cpp_consumer-pkg-config")
        done = run(["c++", "-std=c++20", "-Wall", "-Wextra", "-Werror",
                    os.path.join(HERE, "cpp_consumer/cpp_consumer.cpp"),
                    *pkg_config("--cflags", "--libs"), f"-Wl,-rpath,{libdir()}", "-o", program])
        self.assertEqual(done.returncode, 0, done.stderr)
        self.run_program(program)

    def test_cxx_static_with_cmake(self):
        program = self.cmake_build("cpp_consumer", "-DSTATIC=ON")
        done = run(["ldd", program])
        self.assertNotIn("libdiscarbiter", done.stdout, "linked the shared library")
        self.run_program(program)

    def test_python_ctypes(self):
        done = run([sys.executable, os.path.join(HERE, "ctypes_consumer.py"),
                    os.path.join(libdir(), "libdiscarbiter.so.0")], env=self.env(), timeout=60)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("PASSED", done.stdout)

    def test_sample_burner(self):
        # examples/burner as docs/client.md builds it: find_package against the
        # prefix, then a burn of a 4 MiB image to sim0, verified.
        build = os.path.join(self.tmp, "burner")
        done = run([CMAKE, "-S", os.path.join(SOURCE_DIR, "examples/burner"), "-B", build, "-G",
                    "Ninja", f"-DCMAKE_PREFIX_PATH={PREFIX}", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"])
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        done = run([CMAKE, "--build", build])
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        program = os.path.join(build, "discarbiter-burn")
        self.assertIn(os.path.join(libdir(), "libdiscarbiter.so.0"), run(["ldd", program]).stdout)
        image = os.path.join(self.tmp, "image.iso")
        with open(image, "wb") as f:
            f.write(os.urandom(4 * 1024 * 1024))
        done = run([program, "--name", "SdkBurner", "sim0", image], env=self.env(), timeout=60)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertRegex(done.stdout, r"verified 4\.0 MiB .*CRC-32 (0x[0-9a-f]{8}) \(image\) = \1 \(disc\)")
        self.assertIn("released sim0", done.stdout)

if __name__ == "__main__":
    unittest.main()
