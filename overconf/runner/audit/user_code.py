"""The user's code and weights in an audit: ``module:function`` names of the config the user runs,
imported from the config's folder, what identifies them in the cache, and the target's weights.

Code is imported only here, only from a config the user runs (``overconf audit CONFIG`` or
``overconf.audit``): never from a cache entry or a run folder (the cache holds state dicts, read
with ``weights_only``). A factory's cache identity (:attr:`ModelFactory.content`) is its name, the
SHA-256 of the source file that defines it and of the structure of the module it builds
(``repr`` and parameter shapes): editing that file or the architecture retrains the shadow and
reference models; code elsewhere that the factory calls is not hashed (rename the factory, or
clear the cache, after changing it).
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from overconf.core.cache import content_key
from overconf.core.errors import ConfigError
from overconf.core.seeding import isolated_rng
from overconf.models.wrapped import inner_module
from overconf.training.factory import ModelFactory

TRAIN_SIGNATURE = "train(module, inputs, labels, *, seed, device)"


def import_function(spec: str, base_dir: Path, where: str) -> Callable:
    """``module:function`` (a module in ``base_dir`` or installed) or ``path/file.py:function``
    (relative to ``base_dir``); ``function`` may be dotted (``Class.method``)."""
    module_name, _, attr = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = (base_dir / module_name).resolve()
            if not path.is_file():
                raise ConfigError(f"{where}: file '{path}' does not exist (paths are relative to the config's folder)")
            name = f"overconf_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
            module = sys.modules.get(name)
            if module is None:
                loader = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(loader)
                sys.modules[name] = module
                loader.loader.exec_module(module)
        else:
            module = _import_module(module_name, base_dir, where)
    except ConfigError:
        raise
    except Exception as e:  # the user's module failed to import: say which and why
        raise ConfigError(f"{where}: importing '{module_name}' failed ({type(e).__name__}: {e})") from e
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"{where}: '{module_name}' has no '{attr}'")
    if not callable(obj):
        raise ConfigError(f"{where}: '{spec}' is not callable")
    return obj


def _import_module(name: str, base_dir: Path, where: str):
    local = base_dir / (name.replace(".", "/") + ".py")
    loaded = sys.modules.get(name)
    if loaded is not None and local.is_file() and Path(getattr(loaded, "__file__", "") or "").resolve() != local.resolve():
        raise ConfigError(f"{where}: a module '{name}' is already imported from '{loaded.__file__}', not from "
                          f"'{local}'; name the file as 'path/{local.name}:function' instead")
    sys.path.insert(0, str(base_dir))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(base_dir))


def source_digest(fn: Callable, where: str) -> dict[str, Any]:
    """What identifies ``fn``'s code: its qualified name and the SHA-256 of its module's source file
    (or of its own source); a ``functools.partial`` adds its arguments."""
    if isinstance(fn, functools.partial):
        return {"partial": source_digest(fn.func, where), "args": repr(fn.args), "kwargs": repr(sorted(fn.keywords.items()))}
    try:
        file = inspect.getsourcefile(fn)
        text = Path(file).read_bytes() if file and Path(file).is_file() else inspect.getsource(fn).encode()
    except (OSError, TypeError):
        raise ConfigError(f"{where}: the source of {fn!r} cannot be read, so it cannot key the cache; define it "
                          f"in a module file") from None
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    return {"code": name, "source": hashlib.sha256(text).hexdigest()}


def label(fn: Callable) -> str:
    fn = fn.func if isinstance(fn, functools.partial) else fn
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def model_factory(make: Callable, name: str, fit: Callable | None = None, fit_name: str | None = None) -> ModelFactory:
    """A :class:`ModelFactory` whose content holds the code digests and the built module's structure."""
    with isolated_rng(0):
        module = make()
    if not isinstance(module, torch.nn.Module):
        raise ConfigError(f"model.factory: {name}() must return an untrained torch.nn.Module, got "
                          f"{type(module).__name__}")
    shapes = [(k, list(v.shape)) for k, v in module.state_dict().items()]
    structure = hashlib.sha256(f"{module!r}{shapes}".encode()).hexdigest()
    content = {**source_digest(make, "model.factory"), "structure": structure}
    if fit is not None:
        try:
            inspect.signature(fit).bind(None, None, None, seed=0, device=None)
        except TypeError:
            raise ConfigError(f"model.train: {fit_name} must accept {TRAIN_SIGNATURE}") from None
    return ModelFactory(name, make, content, fit, fit_name,
                        source_digest(fit, "model.train") if fit is not None else {})


def target_state(target: Any, where: str = "model.weights") -> dict[str, torch.Tensor]:
    """The target's state dict from a file (``weights_only=True``), a state dict or an ``nn.Module``."""
    if isinstance(target, torch.nn.Module):
        return {k: v.detach().cpu().clone() for k, v in target.state_dict().items()}
    if isinstance(target, (str, Path)):
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"{where}: file '{path}' does not exist; save the target with "
                              f"torch.save(model.state_dict(), path)")
        try:
            target = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a pickled module, not a state dict
            raise ConfigError(f"{where}: '{path}' is not a state dict readable with weights_only=True ({e}); "
                              f"save it with torch.save(model.state_dict(), path)") from None
    if not isinstance(target, Mapping) or not all(isinstance(v, torch.Tensor) for v in target.values()):
        raise ConfigError(f"{where} must be a state dict (name -> tensor), its file, or the trained module")
    return {str(k): v.detach().cpu() for k, v in target.items()}


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], factory: str) -> None:
    """Load the user's state dict into the (wrapped) model built by the factory."""
    try:
        inner_module(model).load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"model.weights do not fit the module {factory} builds: {str(e).splitlines()[0]} "
                          f"(check that the factory builds the trained architecture)") from None


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    return content_key(state, length=64)


def pickle_by_value(*fns: Callable | None) -> None:
    """Ray workers unpickle the user's functions by value: their modules may not be importable there."""
    from ray import cloudpickle

    for fn in fns:
        fn = fn.func if isinstance(fn, functools.partial) else fn
        module = sys.modules.get(getattr(fn, "__module__", None) or "")
        if module is not None and module.__name__ not in ("__main__", "builtins") \
                and not module.__name__.startswith(("overconf.", "torch")):
            cloudpickle.register_pickle_by_value(module)
