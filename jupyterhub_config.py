"""valeria-hub production configuration.

Every setting comes from an environment variable (see the README's table); this is
the only file that reads the environment. The demo (`make demo`) uses this same file
with other variables pointing at the local stand-ins.
"""

import os
import sys

from jupyterhub.roles import get_default_roles

from valeria_hub.auth.notebook_token import CUSTOM_SCOPES, with_keycloak_token_scope
from valeria_hub.database import use_write_ahead_log_for_sqlite
from valeria_hub.envconfig import ConfigError, read_settings
from valeria_hub.gc_tuning import tune_gc
from valeria_hub.jobs.hub_service import SERVICE_NAME, service_definition, service_roles
from valeria_hub.templates import FORM_DIR, TEMPLATES_DIR

c = get_config()  # noqa: F821 - provided by JupyterHub

try:
    s = read_settings(os.environ)
except ConfigError as e:
    print(e, file=sys.stderr)
    sys.exit(2)

# -- hub ----------------------------------------------------------------------------
# A hub serving a thousand people keeps a large, long-lived heap: fewer and smaller full
# garbage collections (valeria_hub.gc_tuning; the morning rush's GC pauses: 4x less).
tune_gc()
c.JupyterHub.bind_url = s.bind_url
c.JupyterHub.hub_bind_url = s.hub_bind_url
c.ConfigurableHTTPProxy.api_url = s.proxy_api_url
c.JupyterHub.cookie_secret = s.cookie_secret
if s.public_url.startswith("https://"):
    # the hub's cookies carry Secure whatever X-Forwarded-Proto the proxy chain sends
    c.JupyterHub.tornado_settings.update({"cookie_options": {"secure": True}})
c.CryptKeeper.keys = list(s.crypt_keys)
if s.db_url:
    c.JupyterHub.db_url = s.db_url
else:
    print(
        "WARNING: JUPYTERHUB_DATABASE_HOST is not set: using SQLite in the working directory",
        file=sys.stderr,
    )
    use_write_ahead_log_for_sqlite()
# A hub restart (a new pod, an upgrade) must not stop anyone's notebook: servers keep
# running and the restarted hub finds them again in the database.
c.JupyterHub.cleanup_servers = False
if s.hub_connect_ip:
    c.JupyterHub.hub_connect_ip = s.hub_connect_ip
# Page templates: the deployment's own folder (templates/ next to this file, or
# VALERIA_TEMPLATES_DIR) before the package's defaults, which its pages extend by the name
# "valeria_hub/templates/<page>" (the package's parent directory comes last for that).
templates_dir = os.environ.get("VALERIA_TEMPLATES_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "templates"
)
if not os.path.isdir(templates_dir):
    if os.environ.get("VALERIA_TEMPLATES_DIR"):
        print(f"WARNING: VALERIA_TEMPLATES_DIR {templates_dir} is not a directory", file=sys.stderr)
    templates_dir = None
deployment_dirs = [templates_dir] if templates_dir else []
package_parent = os.path.dirname(os.path.dirname(TEMPLATES_DIR))
c.JupyterHub.template_paths = [*deployment_dirs, TEMPLATES_DIR, package_parent]
c.KubeSpawner.additional_profile_form_template_paths = [
    *(os.path.join(d, "kubespawner") for d in deployment_dirs),
    FORM_DIR,
    package_parent,
]
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

# -- the deployment's own settings ----------------------------------------------------------
# A Python config file for what the environment does not cover (for example a ConfigMap
# mounted into the hub pod). It is loaded before the jobs service is defined, so that its
# c.VaultIdentity and c.StorageLayout settings reach batch jobs exactly as notebooks.
if s.extra_config:
    load_subconfig(s.extra_config)  # noqa: F821 - provided by traitlets' config loader

# -- services -------------------------------------------------------------------------------
# The batch jobs service, started and proxied by the hub at /services/jobs/ ("Batch jobs"
# in the Services menu); every user may use it with their own identity. It receives this
# configuration's VaultIdentity, StorageLayout and JobsServiceApp sections as they stand
# here (an operator tunes the service with c.JobsServiceApp in the extra config file):
# nothing below this line may set them.
c.JupyterHub.load_roles = service_roles()
try:
    c.JupyterHub.services = [service_definition(s, sys.executable, c)]
except ValueError as e:  # a setting said twice, or one JSON cannot carry
    print(f"jupyterhub_config.py: {e}", file=sys.stderr)
    sys.exit(2)
# The service keeps a person's confirmed login (access token, Vault profile) in memory for
# a few seconds between submissions: the hub tells it at once when that login ends.
c.KeycloakAuthenticator.login_end_services = [SERVICE_NAME]

# A person's notebook may fetch that person's own Keycloak access token, kept fresh by the
# hub (`valeria-hub token`, e.g. to log in to Vault): a custom scope that every user holds
# for themselves, and that their server's JUPYTERHUB_API_TOKEN gets beside the server
# role's default scopes. It reaches no other user's tokens.
c.JupyterHub.custom_scopes = dict(CUSTOM_SCOPES)
server_defaults = next(r["scopes"] for r in get_default_roles() if r["name"] == "server")
c.JupyterHub.load_roles = with_keycloak_token_scope(c.JupyterHub.load_roles, server_defaults)

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
