from __future__ import annotations

import sys
from pathlib import Path

# --import-mode=importlib does not put this folder on sys.path; the tests import their
# shared boards and checks (fastlog_kit.py) from here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
