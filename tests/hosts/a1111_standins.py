"""Import-only stand-ins for packages the k-diffusion package imports but no sampler uses.

k-diffusion 0.1.1.post1 (byte-identical sampling.py / external.py to A1111 1.10's pin) imports
clip, cleanfid, torchvision, skimage, ... from its __init__ for training and evaluation code. The
host-free tests need only `k_diffusion.sampling` and `k_diffusion.external`; a meta-path finder
answers for the absent packages with empty modules, and anything *called* on them raises.
"""
import importlib
import importlib.abc
import importlib.machinery
import sys
import types


class _Missing(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Unusable


class _Unusable:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("stand-in for a package the sampling code never uses")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots):
        self.roots = set(roots)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Missing(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def import_k_diffusion():
    """Import the installed k_diffusion, standing in for whichever of its imports are absent."""
    missing = set()
    for _ in range(30):
        try:
            return importlib.import_module("k_diffusion")
        except ModuleNotFoundError as error:
            root = (error.name or "").split(".")[0]
            if not root or root == "k_diffusion" or root in missing:
                raise
            missing.add(root)
            for name in [n for n in sys.modules if n == "k_diffusion" or n.startswith("k_diffusion.")]:
                del sys.modules[name]
            sys.meta_path.insert(0, _Finder({root}))
    raise ImportError("k_diffusion: too many missing imports")
