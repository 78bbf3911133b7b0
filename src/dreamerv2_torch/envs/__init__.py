"""Environment suites behind one dict-observation API (see `base.py`)."""
