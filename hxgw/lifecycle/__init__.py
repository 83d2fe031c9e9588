"""The process under systemd: the daemon, its workers, sd_notify, reload and drain.

May import: everything but tools.
"""
