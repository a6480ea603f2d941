"""Make tests/helpers.py importable whatever pytest's import mode. Imports no engine."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
