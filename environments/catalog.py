"""The catalogue of environments (scene definitions). Placeholder data until the
environments issue lands its full, validated definitions."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Environment:
    id: str
    name: str
    description: str

    def summary(self) -> dict:
        return asdict(self)


_CATALOG = {
    "beach": Environment(
        "beach", "Beach", "A quiet sandy beach at golden hour; gentle waves roll in from a calm sea."
    ),
    "forest": Environment(
        "forest", "Forest", "A soft-lit clearing among tall trees, with light fog and dappled sun."
    ),
}


def all_environments() -> list[Environment]:
    return list(_CATALOG.values())


def get_environment(env_id: str) -> Environment | None:
    return _CATALOG.get(env_id)
