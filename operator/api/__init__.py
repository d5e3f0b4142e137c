"""The custom resources, as pydantic models: the single source of the CRD schemas."""

from mixtura_operator.api.domainset import Domain, DomainSet, DomainSetSpec, DomainSetStatus
from mixtura_operator.api.mixturesearch import (
    MixtureSearch,
    MixtureSearchSpec,
    MixtureSearchStatus,
    Phase,
)

GROUP = "mixtura.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Domain",
    "DomainSet",
    "DomainSetSpec",
    "DomainSetStatus",
    "MixtureSearch",
    "MixtureSearchSpec",
    "MixtureSearchStatus",
    "Phase",
]
