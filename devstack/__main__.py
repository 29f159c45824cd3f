"""``python -m devstack``: the local stand-ins (``run``) or the whole demo (``demo``).

Run from a checkout (``make demo``, ``make devstack``); the product's ``valeria-hub``
command keeps only what a real deployment uses (``jobs``, ``users``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from .stack import run_devstack

    ports = {"keycloak": args.keycloak_port, "vault": args.vault_port, "kube": args.kube_port}
    return run_devstack(Path(args.state_dir), host=args.host, ports=ports)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    ports = {"keycloak": args.keycloak_port, "vault": args.vault_port, "kube": args.kube_port}
    return run_demo(
        Path(args.state_dir),
        port=args.port,
        ports=ports,
        hub_api_port=args.hub_api_port,
        proxy_api_port=args.proxy_api_port,
    )


def _standin_ports(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keycloak-port", type=int, default=8080, help="the Keycloak stand-in")
    p.add_argument("--vault-port", type=int, default=8200, help="the Vault stand-in")
    p.add_argument("--kube-port", type=int, default=6443, help="the Kubernetes API stand-in")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="valeria-hub's local stand-ins of Keycloak, Vault and the Kubernetes API.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run the local stand-ins of Keycloak, Vault and the Kubernetes API",
        description="Run the Keycloak, Vault and Kubernetes API stand-ins on fixed loopback "
        "ports, seeded with the demo realm and users, until Ctrl-C.",
    )
    p.add_argument("--state-dir", default=".devstack", help="where pods' files and logs go")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    _standin_ports(p)
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "demo",
        help="the stand-ins plus a real JupyterHub on http://127.0.0.1:8000",
        description="Start the stand-ins and JupyterHub configured by jupyterhub_config.py; "
        "Ctrl-C stops everything.",
    )
    p.add_argument("--state-dir", default=".devstack", help="where the hub's database and pods go")
    p.add_argument("--port", type=int, default=8000, help="the hub's public port")
    p.add_argument("--hub-api-port", type=int, default=8081, help="the hub's internal port")
    p.add_argument("--proxy-api-port", type=int, default=8001, help="the proxy's API port")
    _standin_ports(p)
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
