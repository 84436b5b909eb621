"""examples/python runs, and prints what its calls are meant to give."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_receipts_example(tmp_path):
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "python", "receipts.py"), str(tmp_path / "s")],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    assert "lines 7 words 15" in out
    assert "receipt 2, near 'TOTAL': [('TOTAL', 1.0)" in out
    assert "'label_GRAND_TOTAL': True" in out and "label_status" not in out.split("labelled:")[1].split("\n")[0]
    assert "after deleting receipt 1: lines 4 words 8" in out
    assert "reader sees 4 lines" in out
    assert "verify: True" in out
