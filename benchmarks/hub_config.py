"""The hub configuration of the benchmarks: the repository's production
``jupyterhub_config.py`` plus benchmark instrumentation, all switched by variables
that only the benchmarks set:

- ``VALERIA_BENCH_BASE_CONFIG``: the production configuration file to load first;
- ``VALERIA_BENCH_TOKEN``: an API token for a ``bench`` service (admin on users and
  servers, to seed users, read server state and mint user tokens);
- ``VALERIA_BENCH_LOOPLAG``: a file for the event-loop lag monitor
  (``benchmarks.looplag``), started inside the hub's loop;
- ``VALERIA_BENCH_PLAIN``: JSON of ``KubeSpawner`` settings: the hub then runs plain
  KubeSpawner with them (the baseline of the spawn-overhead scenario);
- ``VALERIA_BENCH_KBATCH``: JSON ``{"url", "api_token"}`` of kbatch-proxy, registered as
  the external service ``kbatch`` (the jobs scenario's peer);
- ``VALERIA_BENCH_REFRESH``: ``auth_refresh_age,refresh_margin`` for the refresh scenario.
"""

import json
import os

load_subconfig(os.environ["VALERIA_BENCH_BASE_CONFIG"])  # noqa: F821 - traitlets config
c = get_config()  # noqa: F821

if token := os.environ.get("VALERIA_BENCH_TOKEN"):
    c.JupyterHub.services.append({"name": "bench", "api_token": token})
    c.JupyterHub.load_roles.append(
        {
            "name": "bench",
            "services": ["bench"],
            "scopes": ["admin:users", "admin:servers", "access:servers", "tokens", "list:users"],
        }
    )

if peer := os.environ.get("VALERIA_BENCH_KBATCH"):
    # kbatch-proxy, the jobs scenario's peer: an external service on this hub
    c.JupyterHub.services.append({"name": "kbatch", **json.loads(peer)})

if lag_file := os.environ.get("VALERIA_BENCH_LOOPLAG"):
    from benchmarks.looplag import LoopLagMonitor

    LoopLagMonitor(lag_file).start()

if plain := os.environ.get("VALERIA_BENCH_PLAIN"):
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    for key, value in json.loads(plain).items():
        setattr(c.KubeSpawner, key, value)

if refresh := os.environ.get("VALERIA_BENCH_REFRESH"):
    age, margin = refresh.split(",")
    c.KeycloakAuthenticator.auth_refresh_age = int(age)
    c.KeycloakAuthenticator.refresh_margin = float(margin)
