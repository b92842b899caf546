"""docs/client.md shows the code of examples/snippets/ (compiled with every
build) word for word: each `<!-- snippet: PATH -->` is followed by a fenced
block holding PATH's text, and every snippet file is shown. The Python
(ctypes) snippet runs against a live service with the built library."""
import os
import re
import subprocess
import sys
import unittest

from harness import DISCARB, Service

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DOC = os.path.join(ROOT, "docs", "client.md")
SNIPPETS = os.path.join(ROOT, "examples", "snippets")
MARKED_BLOCK = re.compile(r"<!-- snippet: (\S+) -->\n```[a-z]*\n(.*?)```\n", re.S)


def marked_blocks(text):
    return {m.group(1): m.group(2) for m in MARKED_BLOCK.finditer(text)}


class ClientDoc(unittest.TestCase):
    def test_every_snippet_block_is_its_file(self):
        with open(DOC) as f:
            blocks = marked_blocks(f.read())
        self.assertTrue(blocks, "docs/client.md has no snippet blocks")
        for path, block in blocks.items():
            with self.subTest(path=path), open(os.path.join(ROOT, path)) as f:
                self.assertEqual(block, f.read(), f"docs/client.md's copy of {path} differs "
                                 "(examples/snippets/refresh-doc.py copies the files in)")

    def test_every_snippet_file_is_in_the_doc(self):
        with open(DOC) as f:
            shown = set(marked_blocks(f.read()))
        files = {f"examples/snippets/{name}" for name in os.listdir(SNIPPETS)
                 if name.endswith((".cpp", ".c", ".py")) and name != "refresh-doc.py"}
        self.assertEqual(files - shown, set(), "snippet files docs/client.md does not show")


    def test_the_ctypes_snippet_runs(self):
        # N.B. the shared library is built beside discarb (client-lib/).
        libdir = os.path.dirname(os.path.abspath(DISCARB))
        if not os.path.exists(os.path.join(libdir, "libdiscarbiter.so.0")):
            print(f"\nctypes snippet: skipped: no libdiscarbiter.so.0 beside {DISCARB}")
            self.skipTest("no libdiscarbiter.so.0 beside discarb")
        service = Service(simulate=1)
        try:
            env = dict(service.env(), LD_LIBRARY_PATH=libdir)
            done = subprocess.run([sys.executable, os.path.join(SNIPPETS, "ctypes_inquiry.py"),
                                   "sim0"], env=env, capture_output=True, text=True, timeout=30)
        finally:
            self.assertEqual(service.stop(), 0)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertEqual(done.stdout, "DISCARB Simulated MMC\n")


if __name__ == "__main__":
    unittest.main()
