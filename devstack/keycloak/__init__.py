"""The Keycloak stand-in: a realm model behind Keycloak's own paths, bodies and errors."""

from .standin import DEMO_REALM, KeycloakStandIn

__all__ = ["DEMO_REALM", "KeycloakStandIn"]
