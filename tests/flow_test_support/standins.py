"""One import finder for the packages a host imports at module level but never calls on the SDXL
sampling path, and which cannot be installed next to CPU torch 2.13 (no torchvision or torchaudio
wheel loads against it; timm and k-diffusion's clip/cleanfid declare those), or which a webui clones
at first launch (Stability's `ldm` and `sgm` for reForge).

    from flow_test_support import standins
    standins.install("torchvision", "torchaudio")    # only those whose real import fails
    standins.install("ldm", "sgm", always=True)       # always stood in for

A stand-in module answers every import of itself and of any submodule (`from torchvision.ops import
roi_align`, `import torchaudio.functional as AF`). Attribute access gives a further stand-in module
for lower-case names and an inert class for capitalised ones (instances accept any arguments, calling
them returns None; class attributes are further inert classes), and `InterpolationMode` is the enum
torchvision defines. Nothing on the sampling path calls them; a host that did would get None.
Stdlib only: runs in every host's interpreter.
"""
import enum
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

VERSION = "0.0.0+stand-in"


class InterpolationMode(enum.Enum):
    """torchvision.transforms.InterpolationMode's members (webuis read them at import)."""
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


class _InertMeta(type):
    """Class attributes of an inert class are further inert classes."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _inert_class(name, cls.__module__)


def _inert_init(self, *args, **kwargs):
    pass


def _inert_call(self, *args, **kwargs):
    return None


def _inert_class(name, module):
    return _InertMeta(name, (), {"__init__": _inert_init, "__call__": _inert_call, "__module__": module})


class StandInModule(types.ModuleType):
    """An importable empty package; see the module docstring for what its attributes are."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "InterpolationMode":
            value = InterpolationMode
        elif name[:1].islower():
            value = importlib.import_module(f"{self.__name__}.{name}")
        else:
            value = _inert_class(name, self.__name__)
        setattr(self, name, value)
        return value

    def __call__(self, *args, **kwargs):
        return None


class StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of `roots` and their submodules with StandInModule packages."""

    def __init__(self):
        self.roots = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        if "." not in module.__name__:
            module.__version__ = VERSION


def finder():
    """The one StandInFinder on sys.meta_path (installed first, at the front, on first use)."""
    for entry in sys.meta_path:
        if isinstance(entry, StandInFinder) or type(entry).__name__ == "StandInFinder" and hasattr(entry, "roots"):
            return entry
    entry = StandInFinder()
    sys.meta_path.insert(0, entry)
    return entry


def _forget(root):
    for name in [n for n in sys.modules if n == root or n.startswith(root + ".")]:
        del sys.modules[name]


def install(*roots, always=False):
    """Stand in for each of `roots` whose real import fails (all of them when `always`).

    Returns the set of roots now stood in for. A root already imported for real is left alone.
    """
    active = finder()
    for root in roots:
        if root in active.roots:
            continue
        if not always:
            existing = sys.modules.get(root)
            if existing is not None and not isinstance(existing, StandInModule):
                continue
            try:
                if importlib.util.find_spec(root) is not None:
                    importlib.import_module(root)
                    continue
            except Exception:
                pass
        _forget(root)
        active.roots.add(root)
    return set(active.roots)


def is_stand_in(module_or_name):
    """True when the module (or the module imported under that name) is a stand-in."""
    module = sys.modules.get(module_or_name) if isinstance(module_or_name, str) else module_or_name
    return isinstance(module, StandInModule)


def import_with_stand_ins(name, limit=30):
    """Import `name`, standing in for each top-level package its import reports missing.

    k-diffusion 0.1.1.post1's __init__ imports clip, cleanfid, torchvision, ... for training and
    evaluation code; the samplers (`k_diffusion.sampling`, `k_diffusion.external`) never use them.
    """
    missing = set()
    for _ in range(limit):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as error:
            root = (error.name or "").split(".")[0]
            if not root or root == name.split(".")[0] or root in missing:
                raise
            missing.add(root)
            _forget(name.split(".")[0])
            install(root, always=True)
    raise ImportError(f"{name}: too many missing imports ({sorted(missing)})")


def import_k_diffusion():
    """The installed k_diffusion package, with stand-ins for whichever of its imports are absent."""
    return import_with_stand_ins("k_diffusion")
