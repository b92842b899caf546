"""What `cmake --install` lays out for SDK users (the sdk_prefix fixture):
the headers, each compiling alone with only the prefix on the include path
and pulling in no third-party header; the libraries with their SONAME and
an export list of the API only; the CMake package and the pkg-config
file."""
import os
import re
import shutil
import tempfile
import unittest

from sdk import PREFIX, libdir, pkg_config, run

HEADERS = ["client.hpp", "discarbiter.h", "mmc.hpp", "export.h", "proto/bytes.hpp",
           "proto/errors.hpp", "proto/messages.hpp", "proto/mmc.hpp", "proto/sense.hpp"]
C_HEADERS = ["discarbiter.h", "export.h"]
INTERNAL = ["proto/wire.hpp", "proto/frame.hpp", "proto/incoming.hpp", "proto/result.hpp"]
THIRD_PARTY = re.compile(r"/(nlohmann|fmt|boost|spdlog|CLI|asio)/")


class InstalledTree(unittest.TestCase):
    def test_headers_libraries_and_package_files(self):
        include = os.path.join(PREFIX, "include/discarbiter")
        installed = sorted(os.path.relpath(os.path.join(d, f), include)
                           for d, _, files in os.walk(include) for f in files)
        self.assertEqual(installed, sorted(HEADERS))
        lib = libdir()
        for name in ("libdiscarbiter.so", "libdiscarbiter.so.0", "libdiscarbiter.so.0.1.0",
                     "libdiscarbiter.a", "pkgconfig/discarbiter.pc",
                     "cmake/DiscArbiter/DiscArbiterConfig.cmake",
                     "cmake/DiscArbiter/DiscArbiterConfigVersion.cmake",
                     "cmake/DiscArbiter/DiscArbiterTargets.cmake"):
            self.assertTrue(os.path.exists(os.path.join(lib, name)), name)
        self.assertEqual(os.readlink(os.path.join(lib, "libdiscarbiter.so")), "libdiscarbiter.so.0")
        self.assertEqual(os.readlink(os.path.join(lib, "libdiscarbiter.so.0")),
                         "libdiscarbiter.so.0.1.0")
        for target in ("DiscArbiter::client", "DiscArbiter::client_c", "DiscArbiter::client_static",
                       "DiscArbiter::proto"):
            with open(os.path.join(lib, "cmake/DiscArbiter/DiscArbiterTargets.cmake")) as f:
                self.assertIn(f"add_library({target} ", f.read())


class Headers(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="discarbiter-headers.")
        self.addCleanup(shutil.rmtree, self.tmp)

    def compile_alone(self, compiler, flags, header, suffix):
        # A translation unit that includes just this header, as a user's would.
        source = os.path.join(self.tmp, "tu" + suffix)
        with open(source, "w") as f:
            f.write(f"#include <discarbiter/{header}>\ntypedef int discarbiter_translation_unit;\n")
        include = ["-I", os.path.join(PREFIX, "include")]
        # N.B. -nostdinc would drop the standard library too; -M lists every
        # file the header pulled in, so a third-party one found in
        # /usr/include is caught even though it would compile.
        done = run([compiler, *flags, *include, "-M", source])
        self.assertEqual(done.returncode, 0, f"{header}: {done.stderr}")
        self.assertIsNone(THIRD_PARTY.search(done.stdout), f"{header} pulls in {done.stdout}")
        done = run([compiler, *flags, *include, "-Wall", "-Wextra", "-Werror", "-pedantic",
                    "-fsyntax-only", source])
        self.assertEqual(done.returncode, 0, f"{header}: {done.stderr}")

    def test_every_header_compiles_alone_as_cxx20(self):
        for header in HEADERS:
            with self.subTest(header=header):
                self.compile_alone("c++", ["-std=c++20"], header, ".cpp")

    def test_the_c_headers_compile_as_c99(self):
        for header in C_HEADERS:
            with self.subTest(header=header):
                self.compile_alone("cc", ["-std=c99"], header, ".c")

    def test_c_macros_use_no_old_style_cast_in_cxx(self):
        # Every DA_* constant and macro of discarbiter.h, expanded in C++ with
        # -Wold-style-cast (a common C++ warning set) and in C99.
        with open(os.path.join(PREFIX, "include/discarbiter/discarbiter.h")) as f:
            names = re.findall(r"^#define (DA_[SE]_\w+) ", f.read(), re.M)
        self.assertIn("DA_E_INVALIDARG", names)
        body = "".join(f"  n += DA_FAILED({name}) + DA_SUCCEEDED({name});\n" for name in names)
        for compiler, flags, suffix in (("c++", ["-std=c++20", "-Wold-style-cast"], ".cpp"),
                                        ("cc", ["-std=c99"], ".c")):
            with self.subTest(compiler=compiler):
                source = os.path.join(self.tmp, "macros" + suffix)
                with open(source, "w") as f:
                    f.write("#include <discarbiter/discarbiter.h>\n"
                            f"int count(void) {{\n  int n = 0;\n{body}  return n;\n}}\n")
                done = run([compiler, *flags, "-I", os.path.join(PREFIX, "include"), "-Wall",
                            "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", source])
                self.assertEqual(done.returncode, 0, done.stderr)

    def test_internal_headers_are_not_installed(self):
        for header in INTERNAL:
            self.assertFalse(os.path.exists(os.path.join(PREFIX, "include/discarbiter", header)))


class SharedLibrary(unittest.TestCase):
    def test_soname(self):
        done = run(["objdump", "-p", os.path.join(libdir(), "libdiscarbiter.so.0.1.0")])
        self.assertRegex(done.stdout, r"SONAME\s+libdiscarbiter\.so\.0\n")

    def test_only_the_api_is_exported(self):
        done = run(["nm", "-D", "--defined-only", "-C", os.path.join(libdir(), "libdiscarbiter.so.0")])
        self.assertEqual(done.returncode, 0, done.stderr)
        symbols = [line.split(" ", 2)[2] for line in done.stdout.splitlines() if line.count(" ") >= 2]
        for symbol in symbols:
            self.assertNotRegex(symbol, r"nlohmann|fmt::|asio|boost|spdlog", "a dependency leaks")
            self.assertTrue(symbol.startswith("da_") or "discarbiter::" in symbol,
                            f"{symbol} is not the SDK's API")
        # Every function of the C ABI is there.
        with open(os.path.join(PREFIX, "include/discarbiter/discarbiter.h")) as f:
            declared = set(re.findall(r"DISCARBITER_API[^;(]*?\b(da_\w+)\(", f.read()))
        self.assertGreaterEqual(len(declared), 15)
        self.assertEqual(declared - set(symbols), set(), "declared in discarbiter.h, not exported")


class PkgConfig(unittest.TestCase):
    def test_flags(self):
        include = os.path.join(PREFIX, "include")
        self.assertEqual(pkg_config("--cflags"), [f"-I{include}"])
        self.assertEqual(pkg_config("--libs"), [f"-L{libdir()}", "-ldiscarbiter"])
        self.assertIn("-DDISCARBITER_STATIC", pkg_config("--static", "--cflags"))
        self.assertIn("-lpthread", pkg_config("--static", "--libs"))
        self.assertEqual(pkg_config("--modversion"), ["0.1.0"])


if __name__ == "__main__":
    unittest.main()
