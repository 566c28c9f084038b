"""tracegen: fit and sample synthetic embedding-lookup traces that keep cache behaviour and popularity.

Owns the trace data model (:mod:`tracegen.trace`), the readers and writers of the formats people
already hold (:mod:`tracegen.formats`), the locality engine (:mod:`tracegen.locality`), the
fit/sample trace model and the ``tracegen`` command line. Importing it pulls in numpy only;
numba, scipy, torch and matplotlib are imported by the modules that need them.
"""

__version__ = "0.1.0"

from tracegen.errors import TracegenError  # noqa: E402
from tracegen.trace import Table, Trace  # noqa: E402

__all__ = ["Table", "Trace", "TracegenError", "__version__"]
