"""Page templates: the frame of every hub page (the platform's name), the login and
logout pages, the refusal and error pages, and the flavour form.

They ship inside the package so a deployment that installs the wheel has them;
``TEMPLATES_DIR`` goes into ``c.JupyterHub.template_paths``.
"""

from pathlib import Path

TEMPLATES_DIR = str(Path(__file__).parent)
FORM_DIR = str(Path(__file__).parent / "kubespawner")
