# The stand-in's notebook image (.venv-notebook) configures its Jupyter server as the
# Jupyter Docker Stacks images do: terminals run a plain bash, not a login shell. A login
# shell reads the machine's /etc/profile, which on Debian sets PATH anew and so would
# drop the image's environment (its python, jupyter and valeria-hub) from the terminal.
# The Makefile copies this file to .venv-notebook/etc/jupyter/.
c = get_config()  # noqa: F821 - given by the config loader
c.ServerApp.terminado_settings = {"shell_command": ["/bin/bash"]}
