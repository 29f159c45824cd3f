"""Helpers shared by the test folders: stacks, the hub process, PostgreSQL, Chromium."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# the smallest environment of a working deployment, as jupyterhub_config.py reads it
DEPLOYMENT_ENV = {
    "JUPYTERHUB_PUBLIC_URL": "https://hub.example.org",
    "JUPYTERHUB_CRYPT_KEY": "00" * 32,
    "JUPYTERHUB_COOKIE_SECRET": "11" * 32,
    "KEYCLOAK_REALM_URL": "https://sso.example.org/realms/valeria",
    "OAUTH_CLIENT_ID": "jupyterhub",
    "OAUTH_CLIENT_SECRET": "s",
    "VAULT_URL": "https://vault.example.org",
    "NFS_SERVER": "nfs.example.org",
    "NFS_PATH": "/export",
    "S3_ENDPOINT_URL": "https://s3.example.org",
}
