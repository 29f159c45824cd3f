"""valeria-hub production configuration.

Every setting comes from an environment variable (see the README's table); this is
the only file that reads the environment. The demo (`make demo`) uses this same file
with other variables pointing at the local stand-ins.
"""

import os
import sys

from valeria_hub.envconfig import ConfigError, read_settings
from valeria_hub.jobs.hub_service import service_definition, service_roles
from valeria_hub.templates import TEMPLATES_DIR

c = get_config()  # noqa: F821 - provided by JupyterHub

try:
    s = read_settings(os.environ)
except ConfigError as e:
    print(e, file=sys.stderr)
    sys.exit(2)

# -- hub ----------------------------------------------------------------------------
c.JupyterHub.bind_url = s.bind_url
c.JupyterHub.hub_bind_url = s.hub_bind_url
c.ConfigurableHTTPProxy.api_url = s.proxy_api_url
c.JupyterHub.cookie_secret = bytes.fromhex(s.cookie_secret)
c.CryptKeeper.keys = [bytes.fromhex(k) for k in s.crypt_key.split(";") if k]
if s.db_url:
    c.JupyterHub.db_url = s.db_url
else:
    print(
        "WARNING: JUPYTERHUB_DATABASE_HOST is not set: using SQLite in the working directory",
        file=sys.stderr,
    )
# A hub restart (a new pod, an upgrade) must not stop anyone's notebook: servers keep
# running and the restarted hub finds them again in the database.
c.JupyterHub.cleanup_servers = False
if s.hub_connect_ip:
    c.JupyterHub.hub_connect_ip = s.hub_connect_ip
c.JupyterHub.template_paths = [TEMPLATES_DIR]
c.JupyterHub.template_vars = {
    "platform_name": s.platform_name,
    "support_contact": s.support_contact,
}

# -- login: Keycloak ----------------------------------------------------------------
c.JupyterHub.authenticator_class = "valeria-keycloak"
c.KeycloakAuthenticator.realm_url = s.keycloak_realm_url
c.KeycloakAuthenticator.client_id = s.oauth_client_id
c.KeycloakAuthenticator.client_secret = s.oauth_client_secret
c.KeycloakAuthenticator.oauth_callback_url = f"{s.public_url}/hub/oauth_callback"
c.KeycloakAuthenticator.login_service = s.institution
c.KeycloakAuthenticator.admin_roles = set(s.admin_roles)
c.KeycloakAuthenticator.allowed_roles = set(s.allowed_roles)
c.KeycloakAuthenticator.allowed_groups = set(s.allowed_groups)

# -- notebooks: Kubernetes, with the user's uid, storage and S3 keys from Vault -------
c.JupyterHub.spawner_class = "valeria-kubespawner"
c.VaultIdentity.url = s.vault_url
c.VaultIdentity.jwt_mount = s.vault_jwt_mount
c.VaultIdentity.role = s.vault_jwt_role
c.VaultIdentity.kv_mount = s.vault_kv_mount
c.StorageLayout.nfs_server = s.nfs_server
c.StorageLayout.nfs_path = s.nfs_path
c.StorageLayout.s3_endpoint_url = s.s3_endpoint_url
c.KubeSpawner.image = s.notebook_image
c.KubeSpawner.cmd = s.singleuser_cmd
if s.namespace:
    c.KubeSpawner.namespace = s.namespace
c.KubeSpawner.start_timeout = 300
c.KubeSpawner.http_timeout = 120

# -- services -------------------------------------------------------------------------------
# The batch jobs service, started and proxied by the hub at /services/jobs/ ("Batch jobs"
# in the Services menu); every user may use it with their own identity.
c.JupyterHub.load_roles = service_roles()
c.JupyterHub.services = [service_definition(s, sys.executable)]

# The idle culler stops notebooks nobody has used for JUPYTERHUB_IDLE_TIMEOUT seconds.
c.JupyterHub.services.append(
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={s.idle_timeout}",
            f"--cull-every={max(1, min(300, s.idle_timeout // 2))}",
        ],
    }
)
c.JupyterHub.load_roles.append(
    {
        "name": "idle-culler",
        "services": ["idle-culler"],
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    }
)
# Prometheus reads /hub/metrics and /services/jobs/metrics with a token of this role.
if s.metrics_token:
    c.JupyterHub.services.append({"name": "prometheus", "api_token": s.metrics_token})
    c.JupyterHub.load_roles.append(
        {"name": "metrics", "services": ["prometheus"], "scopes": ["read:metrics"]}
    )
