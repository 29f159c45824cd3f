"""Identity entities and aliases of the Vault stand-in (a mixin of VaultModel).

An entity is the person; an alias ties it to one auth mount (by the mount accessor)
under a name such as the JWT ``sub``. Logins reuse the entity their alias points to.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import bad_request
from .kv import rfc3339
from .params import str_list

if TYPE_CHECKING:
    from .model import Mount


@dataclass
class Alias:
    id: str
    canonical_id: str
    mount_accessor: str
    name: str
    mount_type: str
    mount_path: str
    creation_time: float
    last_update_time: float
    metadata: dict[str, str] = field(default_factory=dict)
    custom_metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Entity:
    id: str
    name: str
    creation_time: float
    last_update_time: float
    policies: list[str] = field(default_factory=list)
    metadata: dict[str, str] | None = None
    disabled: bool = False
    alias_ids: list[str] = field(default_factory=list)


class IdentityStore:
    """Entities and aliases; the host class provides ``clock`` and ``mount_by_accessor``."""

    clock: Callable[[], float]
    entities: dict[str, Entity]
    aliases: dict[str, Alias]

    def mount_by_accessor(self, accessor: str) -> Mount | None:  # provided by VaultModel
        raise NotImplementedError

    # -- entities -----------------------------------------------------------------------
    def _entity_name(self, entity_id: str) -> str:
        return f"entity_{entity_id.split('-')[0]}"

    def create_entity(
        self,
        name: str | None = None,
        policies: list[str] | None = None,
        metadata: dict[str, str] | None = None,
        disabled: bool = False,
    ) -> Entity:
        eid = str(uuid.uuid4())
        name = name or self._entity_name(eid)
        if self.entity_by_name(name) is not None:
            raise bad_request("entity name is already in use")
        now = self.clock()
        entity = Entity(eid, name, now, now, sorted(policies or []), metadata, disabled)
        self.entities[eid] = entity
        return entity

    def update_entity(self, entity: Entity, body: dict[str, Any]) -> None:
        if "name" in body and body["name"] and body["name"] != entity.name:
            if self.entity_by_name(body["name"]) is not None:
                raise bad_request("entity name is already in use")
            entity.name = str(body["name"])
        if "policies" in body:
            entity.policies = sorted(str_list(body["policies"]))
        if "metadata" in body:
            entity.metadata = _str_map(body["metadata"], "metadata")
        if "disabled" in body:
            entity.disabled = bool(body["disabled"])
        entity.last_update_time = self.clock()

    def entity_by_name(self, name: str) -> Entity | None:
        for entity in self.entities.values():
            if entity.name == name:
                return entity
        return None

    def delete_entity(self, entity_id: str) -> None:
        entity = self.entities.pop(entity_id, None)
        if entity is None:
            return
        for alias_id in entity.alias_ids:
            self.aliases.pop(alias_id, None)

    def entity_data(self, entity: Entity) -> dict[str, Any]:
        return {
            "aliases": [
                self.alias_data(self.aliases[a]) for a in entity.alias_ids if a in self.aliases
            ],
            "creation_time": rfc3339(entity.creation_time),
            "direct_group_ids": [],
            "disabled": entity.disabled,
            "group_ids": [],
            "id": entity.id,
            "inherited_group_ids": [],
            "last_update_time": rfc3339(entity.last_update_time),
            "merged_entity_ids": None,
            "metadata": entity.metadata,
            "name": entity.name,
            "namespace_id": "root",
            "policies": entity.policies,
        }

    def alias_data(self, alias: Alias) -> dict[str, Any]:
        return {
            "canonical_id": alias.canonical_id,
            "creation_time": rfc3339(alias.creation_time),
            "custom_metadata": alias.custom_metadata,
            "id": alias.id,
            "last_update_time": rfc3339(alias.last_update_time),
            "local": False,
            "merged_from_canonical_ids": None,
            "metadata": alias.metadata,
            "mount_accessor": alias.mount_accessor,
            "mount_path": f"auth/{alias.mount_path}",
            "mount_type": alias.mount_type,
            "name": alias.name,
            "namespace_id": "root",
        }

    def find_alias(self, name: str, accessor: str) -> Alias | None:
        for alias in self.aliases.values():
            if alias.name == name and alias.mount_accessor == accessor:
                return alias
        return None

    def create_alias(
        self,
        name: str,
        canonical_id: str,
        accessor: str,
        metadata: dict[str, str] | None = None,
        custom_metadata: dict[str, str] | None = None,
    ) -> Alias:
        if not name:
            raise bad_request("missing alias name")
        mount = self.mount_by_accessor(accessor)
        if mount is None:
            raise bad_request(f'invalid mount accessor "{accessor}"')
        entity = self.entities.get(canonical_id)
        if entity is None:
            raise bad_request("invalid canonical ID")
        existing = self.find_alias(name, accessor)
        if existing is not None:
            if existing.canonical_id != canonical_id:
                raise bad_request("combination of mount and alias name is already in use")
            return existing
        for alias_id in entity.alias_ids:
            other = self.aliases.get(alias_id)
            if other is not None and other.mount_accessor == accessor:
                raise bad_request(
                    f"mount accessor {accessor!r} has already been used by an existing alias on "
                    f"entity {entity.id!r}"
                )
        now = self.clock()
        alias = Alias(
            str(uuid.uuid4()),
            canonical_id,
            accessor,
            name,
            mount.type,
            mount.path,
            now,
            now,
            dict(metadata or {}),
            dict(custom_metadata or {}),
        )
        self.aliases[alias.id] = alias
        entity.alias_ids.append(alias.id)
        return alias

    def delete_alias(self, alias_id: str) -> None:
        alias = self.aliases.pop(alias_id, None)
        if alias is None:
            return
        entity = self.entities.get(alias.canonical_id)
        if entity is not None and alias_id in entity.alias_ids:
            entity.alias_ids.remove(alias_id)

    def entity_for_login(self, alias_name: str, mount: Mount, metadata: dict[str, str]) -> Entity:
        """What Vault does on a successful login: reuse or create entity + alias."""
        alias = self.find_alias(alias_name, mount.accessor)
        if alias is not None:
            if metadata and alias.metadata != metadata:
                alias.metadata = dict(metadata)
                alias.last_update_time = self.clock()
            return self.entities[alias.canonical_id]
        entity = self.create_entity()
        self.create_alias(alias_name, entity.id, mount.accessor, metadata)
        return entity


def _str_map(value: Any, name: str) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):  # Vault also accepts ["k=v", ...]
        out = {}
        for item in value:
            k, sep, v = str(item).partition("=")
            if not sep:
                raise bad_request(f"invalid {name}: expected key=value")
            out[k] = v
        return out
    raise bad_request(f"invalid {name}: expected a map")
