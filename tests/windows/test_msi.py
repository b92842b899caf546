"""DiscArbiter.msi: its tables as wixl built them (read with msiinfo), and an
install and uninstall with msiexec under Wine."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from test_service_lifecycle import (WINE, discarb, remove_leftover_service,  # noqa: E402
                                    service_state, wait_for_state, wine)

MSI = os.environ["DISCARBITER_MSI"]


def table(name):
    out = subprocess.run(["msiinfo", "export", MSI, name], capture_output=True, text=True,
                         check=True)
    # Three header lines (columns, types, table name), then one row per line.
    return [line.split("\t") for line in out.stdout.splitlines()[3:]]


class Msi(unittest.TestCase):
    def test_service_install_table_names_the_service(self):
        rows = table("ServiceInstall")
        self.assertEqual(len(rows), 1, rows)
        (row,) = rows
        # Name, DisplayName, ServiceType, StartType, ErrorControl, …, StartName
        self.assertEqual(row[1], "DiscArbiter")
        self.assertEqual(row[2], "Disc Arbiter (optical drive access)")
        self.assertEqual(row[3], "16")  # SERVICE_WIN32_OWN_PROCESS
        self.assertEqual(row[4], "2")  # SERVICE_AUTO_START
        self.assertEqual(row[8], "LocalSystem")

    def test_service_control_starts_stops_and_removes(self):
        (row,) = table("ServiceControl")
        self.assertEqual(row[1], "DiscArbiter")
        # msidbServiceControlEvent: start on install 1, stop on install 2 and
        # uninstall 32, remove on uninstall 128.
        self.assertEqual(int(row[2]), 1 | 2 | 32 | 128)

    def test_a_custom_action_prepares_the_data_directory_before_the_service_starts(self):
        (row,) = table("CustomAction")
        # Action, Type, Source, Target. 3090: an installed file's exe (18),
        # deferred (1024), as LocalSystem (2048: no impersonation).
        self.assertEqual(row[:4], ["PrepareDataDirectory", "3090", "discarbiterd.exe",
                                   "prepare-data"])
        sequence = {r[0]: (r[1], int(r[2])) for r in table("InstallExecuteSequence")}
        condition, at = sequence["PrepareDataDirectory"]
        self.assertEqual(condition, "NOT REMOVE")
        self.assertGreater(at, sequence["InstallFiles"][1])
        self.assertLess(at, sequence["StartServices"][1])

    def test_files(self):
        # The service, the CLI, the client library and its SDK: headers, the
        # MinGW import library and the .def file for MSVC's lib.exe. File
        # names are "short|long" where they are not 8.3 names.
        names = sorted(row[2].split("|")[-1] for row in table("File"))
        self.assertEqual(names, sorted([
            "discarb.exe", "discarbiterd.exe", "discarbiter.dll", "libdiscarbiter.dll.a",
            "discarbiter.def", "discarbiter.h", "client.hpp", "mmc.hpp", "export.h", "bytes.hpp",
            "errors.hpp", "messages.hpp", "mmc.hpp", "sense.hpp"]))
        directories = {row[0]: row[2].split("|")[-1] for row in table("Directory")}
        self.assertEqual(directories["SDKPROTODIR"], "proto")
        self.assertEqual(directories["SDKLIBDIR"], "lib")

    def test_msiexec_installs_starts_and_removes_the_service(self):
        subprocess.run([WINE, "--start"], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        remove_leftover_service()
        out = wine("msiexec", "/i", MSI, "/qn", timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        try:
            wait_for_state("RUNNING")
            status = discarb("status")
            self.assertEqual(status.returncode, 0, status.stderr)
            self.assertIn("(windows)", status.stdout)
        finally:
            out = wine("msiexec", "/x", MSI, "/qn", timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIsNone(service_state())


if __name__ == "__main__":
    unittest.main()
