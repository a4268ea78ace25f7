from __future__ import annotations

import sys
from pathlib import Path

# Like tests/conftest.py: the storage tests import backend_helpers from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))
