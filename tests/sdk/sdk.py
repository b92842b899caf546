"""What the SDK tests share: the installed prefix (the sdk_prefix fixture,
tests/sdk/CMakeLists.txt), building a program against it out of tree, and
the integration tests' service harness."""
import glob
import os
import subprocess
import sys
import time

SOURCE_DIR = os.environ.get("SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD_DIR = os.environ.get("BUILD_DIR", os.path.join(SOURCE_DIR, "build/linux"))
PREFIX = os.environ.get("SDK_PREFIX", os.path.join(BUILD_DIR, "sdk-prefix"))
CMAKE = os.environ.get("CMAKE_COMMAND", "cmake")
CPACK = os.environ.get("CPACK_COMMAND", "cpack")
HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests/integration"))
from harness import Service  # noqa: E402  (the integration tests' discarbiterd)


def run(args, env=None, cwd=None, timeout=240):
    """Runs a command, printing it and its output; returns the CompletedProcess."""
    start = time.monotonic()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    print(f"$ {' '.join(args)}  [{time.monotonic() - start:.1f} s, exit {done.returncode}]")
    if done.stdout.strip():
        print(done.stdout.rstrip())
    if done.stderr.strip():
        print(done.stderr.rstrip())
    return done


def libdir():
    """The prefix's library directory (lib, or lib/<multiarch> for /usr)."""
    found = glob.glob(os.path.join(PREFIX, "lib*", "**", "libdiscarbiter.so.0"), recursive=True)
    assert found, f"no libdiscarbiter.so.0 under {PREFIX}: did the sdk.install fixture run?"
    return os.path.dirname(found[0])


def pkg_config_env():
    return dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir(), "pkgconfig"))


def pkg_config(*args):
    done = run(["pkg-config", *args, "discarbiter"], env=pkg_config_env())
    assert done.returncode == 0, done.stderr
    return done.stdout.split()
