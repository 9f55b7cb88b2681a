"""Matplotlib for lungprior's figures: the Agg backend, and every string drawn as plain text.

Image ids, paths and run names come from users; with Matplotlib's default a `$` in one starts a formula
(`$^$` raises when drawn). Figures import `plt` from here, so no text is ever parsed as mathtext.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

__all__ = ["plt"]
