"""Resilience proven from outside the process: a real emulator killed, frozen and attacked.

``emulator_process`` runs ``lpm emulator`` as a child process the tests can SIGKILL, SIGSTOP and
restart on the same port and database file.
"""
