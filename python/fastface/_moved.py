"""Old module paths that still import, as the module that now holds their code (with a
DeprecationWarning): ``import fastface.registry`` gives ``fastface.hub.registry`` itself."""
from __future__ import annotations

import importlib
import sys
import warnings

MOVED = {
    "fastface.registry": "fastface.hub.registry",
    "fastface.download": "fastface.hub.download",
}


class MovedModuleFinder:
    """A meta-path finder and loader that answers an old name with the new module object."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name not in MOVED:
            return None
        from importlib.util import spec_from_loader

        return spec_from_loader(name, cls)

    @staticmethod
    def create_module(spec):
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}; import that instead", DeprecationWarning,
                      stacklevel=2)
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # importlib stamps the old name's spec on the module next
        return module

    @staticmethod
    def exec_module(module):
        module.__spec__ = module.__spec__.loader_state  # its own spec back; its code already ran


def install() -> None:
    if MovedModuleFinder not in sys.meta_path:
        sys.meta_path.append(MovedModuleFinder)
