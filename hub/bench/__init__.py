"""``hub bench``: a load generator in its own processes that measures a running hub (or a peer server).

``loadgen`` owns the client processes, ``client`` their sockets, ``adapters`` the wire protocols they speak,
``runner`` the phases of a run, ``procstat`` what is read from /proc about the server, ``server`` the
``--spawn`` mode's hub process, ``report`` the numbers, the table and the JSON, and ``command`` the CLI.
"""
