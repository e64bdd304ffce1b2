"""Settings of the tcpdiag process, made before numpy is first imported (tcpdiag.cli imports
this module ahead of everything that imports numpy).

numpy's OpenBLAS starts a thread per core when numpy is imported, and they spin a while:
about 80 ms of CPU on every run, a quarter of tcpdiag's start-up, for linear algebra tcpdiag
never does (its numpy work is sorting, grouping and arithmetic on columns, single-threaded).
A value the user set is kept. Importing `tcpdiag` as a library does not do this: only the
command line does.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
