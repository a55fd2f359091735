"""`make bench`: our code beside its baselines, medians and ratios."""

import os

from spcs_local.emulator import LOCAL_ONLY

os.environ.update(LOCAL_ONLY)  # every connection a benchmark makes stays on the machine
