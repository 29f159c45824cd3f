"""Login through Keycloak: the authenticator, its OIDC client, the auth_state layout,
access decisions and the login/logout handlers.

The ``valeria-keycloak`` entry point resolves to :class:`KeycloakAuthenticator`.
"""

from .authenticator import KeycloakAuthenticator

__all__ = ["KeycloakAuthenticator"]
