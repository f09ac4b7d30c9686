"""The one error the registry raises for everything a user can get wrong."""

from __future__ import annotations


class RegistryError(LookupError):
    """A registry operation cannot proceed: unknown model, missing version or alias, refused
    registration. The message names the model, version or alias and what to do instead."""
