"""``python -m deepspeech`` runs the command-line client."""
from __future__ import annotations

import sys

from .client import main

sys.exit(main())
