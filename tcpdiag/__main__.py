"""`python -m tcpdiag` runs the command line."""

from tcpdiag.cli import app

app(prog_name="tcpdiag")
