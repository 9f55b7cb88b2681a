"""lungprior: lung masks as a controllable spatial prior for chest X-ray classification."""

from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS, NO_FINDING

__version__ = "0.1.0"
__all__ = ["FINDINGS", "NO_FINDING", "LungpriorError", "__version__"]
