"""Local stand-ins of Keycloak, Vault and the Kubernetes API, the composed stack and the demo.

Development and test infrastructure, not part of the ``valeria-hub`` wheel: it is run from
a checkout (``python -m devstack``, ``make demo``), where the Makefile puts the repository
on the virtualenv's path.
"""
