"""What both shells share that touches the process and the OS.

The listening socket, the ``--processes`` supervisor, the open-file limit,
the command line and logging. These modules import the sans-I/O core in
``common/``; the core never imports them.
"""
