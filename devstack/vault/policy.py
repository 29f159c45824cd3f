"""Vault ACL policies: the HCL subset policies use, templating and Vault's path matching.

Pure functions only. The rules follow Vault's documentation ("Policies", priority
matching): an exact path wins; otherwise among glob (``*`` at the end) and segment
wildcard (``+``) paths the highest-priority match wins; the same path in several
policies takes the union of capabilities, and ``deny`` beats everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CAPABILITIES = frozenset({"create", "read", "update", "patch", "delete", "list", "sudo", "deny"})

# Legacy ``policy = "..."`` values and what they expand to (Vault keeps accepting them).
_LEGACY = {
    "deny": {"deny"},
    "read": {"read", "list"},
    "write": {"create", "read", "update", "delete", "list"},
    "sudo": {"create", "read", "update", "delete", "list", "sudo"},
}

_PATH_KEYS = {
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
}

# The parts of Vault's built-in default policy that matter to clients of this project.
DEFAULT_POLICY = """\
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own entity by id or name
path "identity/entity/id/{{identity.entity.id}}" {
  capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
  capabilities = ["read"]
}

# Allow a token to look up its resultant ACL from all policies
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}
"""


class PolicyError(ValueError):
    """A policy text that Vault would refuse to store."""


# --------------------------------------------------------------------------- HCL
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<heredoc><<-?(?P<tag>[A-Za-z_][A-Za-z0-9_]*)\n(?P<hbody>.*?)\n\s*(?P=tag)(?=\n|$))
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-.]*)
  | (?P<punct>[{}\[\],=:])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass
class _Tok:
    kind: str
    value: Any
    line: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise PolicyError(f"illegal char {text[pos]!r} at line {line}")
        kind = m.lastgroup if m.lastgroup not in ("tag", "hbody") else "heredoc"
        if m.group("heredoc") is not None:
            kind = "heredoc"
        raw = m.group(0)
        if kind == "string":
            toks.append(_Tok("string", json.loads(raw), line))
        elif kind == "heredoc":
            toks.append(_Tok("string", m.group("hbody"), line))
        elif kind == "number":
            toks.append(_Tok("number", float(raw) if "." in raw else int(raw), line))
        elif kind == "ident":
            toks.append(_Tok("ident", raw, line))
        elif kind == "punct":
            toks.append(_Tok(raw, raw, line))
        line += raw.count("\n")
        pos = m.end()
    return toks


class _Parser:
    """Recursive descent over HCL1 bodies: blocks, attributes, lists, objects."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise PolicyError("unexpected end of policy")
        if kind is not None and tok.kind != kind:
            raise PolicyError(f"expected {kind!r} at line {tok.line}, got {tok.value!r}")
        self.i += 1
        return tok

    def body(self, closing: str | None) -> list[tuple[str, list[str], Any, int]]:
        """Items as (key, labels, value, line); a block's value is its own item list."""
        items: list[tuple[str, list[str], Any, int]] = []
        while True:
            tok = self.peek()
            if tok is None:
                if closing is not None:
                    raise PolicyError("unexpected end of policy: missing '}'")
                return items
            if closing is not None and tok.kind == closing:
                self.take()
                return items
            if tok.kind == ",":
                self.take()
                continue
            if tok.kind not in ("ident", "string"):
                raise PolicyError(f"unexpected {tok.value!r} at line {tok.line}")
            key = self.take().value
            labels: list[str] = []
            while (nxt := self.peek()) is not None and nxt.kind == "string":
                labels.append(self.take().value)
            nxt = self.peek()
            if nxt is not None and nxt.kind in ("=", ":"):
                self.take()
                nxt = self.peek()
                if nxt is not None and nxt.kind == "{" and labels:
                    self.take()
                    items.append((key, labels, self.body("}"), tok.line))
                else:
                    items.append((key, labels, self.value(), tok.line))
            elif nxt is not None and nxt.kind == "{":
                self.take()
                items.append((key, labels, self.body("}"), tok.line))
            else:
                raise PolicyError(f"key {key!r} expected start of object ('{{') or assignment")

    def value(self) -> Any:
        tok = self.take()
        if tok.kind in ("string", "number"):
            return tok.value
        if tok.kind == "ident" and tok.value in ("true", "false"):
            return tok.value == "true"
        if tok.kind == "[":
            out = []
            while True:
                nxt = self.peek()
                if nxt is None:
                    raise PolicyError("unexpected end of policy in list")
                if nxt.kind == "]":
                    self.take()
                    return out
                if nxt.kind == ",":
                    self.take()
                    continue
                out.append(self.value())
        if tok.kind == "{":
            return {k: v for k, _labels, v, _line in self.body("}")}
        raise PolicyError(f"unexpected {tok.value!r} at line {tok.line}")


def parse_hcl(text: str) -> list[tuple[str, list[str], Any, int]]:
    """Parse an HCL body into (key, labels, value, line) items."""
    return _Parser(_tokenize(text)).body(None)


# ----------------------------------------------------------------------- policies
@dataclass(frozen=True)
class PathRule:
    """One ``path`` stanza: a (maybe templated) pattern and its capabilities."""

    path: str
    capabilities: frozenset[str]

    @property
    def templated(self) -> bool:
        return "{{" in self.path


@dataclass
class Policy:
    name: str
    rules: list[PathRule]
    raw: str = ""


def _rule(path: str, spec: Mapping[str, Any], line: int | None = None) -> PathRule:
    where = f" on line {line}" if line else ""
    for key in spec:
        if key not in _PATH_KEYS:
            raise PolicyError(f'path "{path}": invalid key "{key}"{where}')
    caps: set[str] = set()
    legacy = spec.get("policy")
    if legacy is not None:
        if legacy not in _LEGACY:
            raise PolicyError(f'path "{path}": invalid policy "{legacy}"')
        caps |= _LEGACY[legacy]
    raw_caps = spec.get("capabilities", [])
    if isinstance(raw_caps, str):
        raw_caps = [raw_caps]
    for cap in raw_caps:
        if cap not in CAPABILITIES:
            raise PolicyError(f'path "{path}": invalid capability "{cap}"')
        caps.add(cap)
    if "deny" in caps:
        caps = {"deny"}
    return PathRule(path.lstrip("/"), frozenset(caps))


def parse_policy(name: str, text: str) -> Policy:
    """Parse policy text (HCL or JSON) as Vault does when it is written."""
    stripped = text.strip()
    if not stripped:
        raise PolicyError("policy is empty")
    rules: list[PathRule] = []
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise PolicyError(f"invalid JSON: {e.msg}") from None
        paths = doc.get("path", {}) if isinstance(doc, dict) else None
        if not isinstance(paths, dict):
            raise PolicyError('"path" must be an object')
        for key in doc:
            if key not in ("path", "name"):
                raise PolicyError(f'invalid key "{key}"')
        for path, spec in paths.items():
            if not isinstance(spec, dict):
                raise PolicyError(f'path "{path}": expected an object')
            rules.append(_rule(path, spec))
    else:
        for key, labels, value, line in parse_hcl(text):
            if key == "name":
                continue
            if key != "path":
                raise PolicyError(f'invalid key "{key}" on line {line}')
            if len(labels) != 1 or not isinstance(value, list):
                raise PolicyError(f"path block on line {line} needs exactly one quoted path")
            spec = {k: v for k, _l, v, _ln in value}
            rules.append(_rule(labels[0], spec, line))
    return Policy(name=name, rules=rules, raw=text)


# --------------------------------------------------------------------- templating
@dataclass
class Identity:
    """What a token's entity offers to templated policies."""

    entity_id: str
    entity_name: str
    metadata: dict[str, str] = field(default_factory=dict)
    # mount accessor -> {"id": ..., "name": ..., "metadata": {...}}
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)


_TEMPLATE_RE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


class TemplateError(ValueError):
    """A template the token's identity cannot satisfy: Vault skips that path."""


def _lookup(expr: str, ident: Identity) -> str:
    parts = expr.split(".")
    if parts[:2] != ["identity", "entity"] or len(parts) < 3:
        raise TemplateError(expr)
    rest = parts[2:]
    value: Any = None
    if rest == ["id"]:
        value = ident.entity_id
    elif rest == ["name"]:
        value = ident.entity_name
    elif rest[0] == "metadata" and len(rest) == 2:
        value = ident.metadata.get(rest[1])
    elif rest[0] == "aliases" and len(rest) >= 3:
        alias = ident.aliases.get(rest[1])
        if alias is not None:
            if rest[2:] in (["id"], ["name"]):
                value = alias.get(rest[2])
            elif rest[2] == "metadata" and len(rest) == 4:
                value = (alias.get("metadata") or {}).get(rest[3])
    if not isinstance(value, str) or not value:
        raise TemplateError(expr)
    return value


def render_path(path: str, ident: Identity | None) -> str:
    """Fill ``{{identity...}}`` in a path; TemplateError when it cannot be filled."""
    if "{{" not in path:
        return path
    if ident is None:
        raise TemplateError("no entity")
    return _TEMPLATE_RE.sub(lambda m: _lookup(m.group(1), ident), path)


# ---------------------------------------------------------------------------- ACL
def _merge(a: frozenset[str] | None, b: frozenset[str]) -> frozenset[str]:
    if a is None:
        return b
    if "deny" in a or "deny" in b:
        return frozenset({"deny"})
    return a | b


@dataclass(frozen=True)
class _Candidate:
    first_wildcard: int
    is_prefix: bool
    wildcards: int
    pattern: str
    caps: frozenset[str]

    def priority(self) -> tuple:
        # Higher tuple = higher priority (Vault's five documented rules, in order).
        return (
            self.first_wildcard,
            not self.is_prefix,
            -self.wildcards,
            len(self.pattern),
            self.pattern,
        )


def _match_pattern(pattern: str, caps: frozenset[str], path: str) -> _Candidate | None:
    """Match a non-exact pattern (glob and/or ``+`` segments) against a path."""
    is_prefix = pattern.endswith("*")
    pat = pattern[:-1] if is_prefix else pattern
    if "+" not in pat.split("/"):
        if is_prefix and path.startswith(pat):
            return _Candidate(len(pat), True, 0, pat, caps)
        return None
    pat_parts = pat.split("/")
    path_parts = path.split("/")
    if len(path_parts) < len(pat_parts):
        return None
    if not is_prefix and len(path_parts) != len(pat_parts):
        return None
    wildcards = 0
    last = len(pat_parts) - 1
    for i, part in enumerate(pat_parts):
        if part == "+":
            wildcards += 1
        elif part == path_parts[i]:
            continue
        elif is_prefix and i == last and path_parts[i].startswith(part):
            continue
        else:
            return None
    return _Candidate(pat.index("+"), is_prefix, wildcards, pat, caps)


def _is_exact(pattern: str) -> bool:
    return not pattern.endswith("*") and "+" not in pattern.split("/")


@dataclass
class Acl:
    """The merged rules of a token's policies, ready to answer capability questions."""

    exact: dict[str, frozenset[str]] = field(default_factory=dict)
    patterns: dict[str, frozenset[str]] = field(default_factory=dict)
    root: bool = False

    def add(self, rule: PathRule, path: str) -> None:
        table = self.exact if _is_exact(path) else self.patterns
        table[path] = _merge(table.get(path), rule.capabilities)

    def capabilities(self, path: str, operation: str = "read") -> frozenset[str]:
        """The capabilities that apply to ``path`` (empty set: nothing allowed)."""
        if self.root:
            return CAPABILITIES - {"deny"}
        path = path.lstrip("/")
        if path in self.exact:
            return self.exact[path]
        if operation == "list" and path.endswith("/") and path[:-1] in self.exact:
            return self.exact[path[:-1]]
        found = self._best(path)
        if found is None and operation == "list" and path.endswith("/"):
            found = self._best(path[:-1])
        return found.caps if found is not None else frozenset()

    def _best(self, path: str) -> _Candidate | None:
        cands = [c for p, caps in self.patterns.items() if (c := _match_pattern(p, caps, path))]
        return max(cands, key=_Candidate.priority) if cands else None

    def allows(self, operation: str, path: str, *, sudo: bool = False) -> bool:
        """Whether ``operation`` (create/read/update/patch/delete/list) is allowed."""
        if self.root:
            return True
        caps = self.capabilities(path, operation)
        if "deny" in caps or operation not in caps:
            return False
        return not sudo or "sudo" in caps


def build_acl(policies: Iterable[Policy], identity: Identity | None = None) -> Acl:
    """Merge policies into one ACL; templated paths the identity cannot fill are skipped."""
    acl = Acl()
    for policy in policies:
        if policy.name == "root":
            acl.root = True
            continue
        for rule in policy.rules:
            try:
                path = render_path(rule.path, identity)
            except TemplateError:
                continue
            acl.add(rule, path)
    return acl
