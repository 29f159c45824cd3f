"""Onboarding people into Vault: an operator's AppRole writes each person's uid, gid and
S3 keys and never reads a secret back (``valeria-hub users onboard|check``); with
``--nfs-root``, their home and scratch directories on the NFS export too (dirs.py)."""
