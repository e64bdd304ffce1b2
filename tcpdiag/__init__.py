"""tcpdiag: explain, in application terms, why TCP connections in a packet capture failed."""

__version__ = "0.1.0"
