"""The Vault stand-in: JWT and AppRole auth, identity, KV v2 and ACL policies over HTTP."""

from .standin import VaultStandIn, valeria_app_policy

__all__ = ["VaultStandIn", "valeria_app_policy"]
