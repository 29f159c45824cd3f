"""Page templates: the hub's login, spawn-failure and flavour form pages.

They ship inside the package so a deployment that installs the wheel has them;
``TEMPLATES_DIR`` goes into ``c.JupyterHub.template_paths``.
"""

from pathlib import Path

TEMPLATES_DIR = str(Path(__file__).parent)
FORM_DIR = str(Path(__file__).parent / "kubespawner")
