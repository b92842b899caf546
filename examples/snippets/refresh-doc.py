#!/usr/bin/env python3
"""Copies each snippet file into docs/client.md, in place of the fenced block
after its `<!-- snippet: PATH -->` marker (integration.test_client_doc checks
the two agree)."""
import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DOC = os.path.join(ROOT, "docs", "client.md")


def fill(match):
    with open(os.path.join(ROOT, match.group(1))) as f:
        return f"<!-- snippet: {match.group(1)} -->\n```{match.group(2)}\n{f.read()}```\n"


with open(DOC) as f:
    text = f.read()
text = re.sub(r"<!-- snippet: (\S+) -->\n```([a-z]*)\n.*?```\n", fill, text, flags=re.S)
with open(DOC, "w") as f:
    f.write(text)
