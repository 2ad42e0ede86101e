"""Whole-program files: ``save(dir, save_program=True)`` and ``dx.load(dir, allow_pickle=True)``.

DSPy's layout: a directory holding ``program.pkl`` (the module pickled with cloudpickle, so
its classes and code come along) and ``metadata.json`` (dependency versions). Credentials
never go in: an LM is pickled as its settings without the API key, and the loaded LM takes
the key from the environment as a new one would. Signatures are pickled as their fields and
instructions (their classes are immutable, so they are rebuilt, not patched). Unpickling runs
code from the file, so loading needs ``allow_pickle=True``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dspex_actors._errors import ConfigurationError, ProgramLoadError

__all__ = [
    "METADATA_FILE",
    "PROGRAM_FILE",
    "dependency_versions",
    "load_program",
    "load_state_pickle",
    "save_program",
    "save_state_pickle",
]

logger = logging.getLogger(__name__)

PROGRAM_FILE = "program.pkl"
METADATA_FILE = "metadata.json"


def _cloudpickle() -> ModuleType:
    try:
        import cloudpickle
    except ImportError as exc:
        raise ConfigurationError(
            "saving or loading a whole program (save_program=True) needs cloudpickle: "
            "pip install 'dspex-actors[pickle]' (or save the state as JSON: save('x.json'))"
        ) from exc
    module: ModuleType = cloudpickle
    return module


def _saved_lm_settings(lm: Any) -> dict[str, Any]:
    """An LM's settings as a saved program holds them: no API key, and a proxy or api_base
    URL that carries a user or password is left out (the loaded LM follows the environment's
    proxy; an api_base keeps its host without the credentials)."""
    settings: dict[str, Any] = lm.settings()
    proxy = settings.get("proxy")
    if isinstance(proxy, str) and _has_userinfo(proxy):
        logger.warning("the saved program's LM %s uses the environment's proxy", lm.model)
        settings["proxy"] = None
    base = settings.get("api_base")
    if isinstance(base, str) and _has_userinfo(base):
        parts = urlsplit(base)
        netloc = parts.netloc.rsplit("@", 1)[1]
        settings["api_base"] = urlunsplit(parts._replace(netloc=netloc))
    return settings


def _has_userinfo(url: str) -> bool:
    parts = urlsplit(url)
    return parts.username is not None or parts.password is not None


def _restore_lm(settings: dict[str, Any]) -> Any:
    from dspex_actors.lm import LM

    return LM(**settings)


def _pickle(program: Any, handle: Any) -> None:
    cloudpickle = _cloudpickle()
    from dspex_actors.lm import LM
    from dspex_actors.signatures import Signature, SignatureMeta, rebuild_signature

    class ProgramPickler(cloudpickle.Pickler):  # type: ignore[misc,name-defined]
        """cloudpickle, with LMs as credential-free settings and signatures as their parts."""

        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, LM):
                return _restore_lm, (_saved_lm_settings(obj),)
            if isinstance(obj, SignatureMeta) and obj is not Signature:
                parts = (obj.__name__, obj.__qualname__, obj.__module__)
                return rebuild_signature, (*parts, dict(obj.fields), obj.instructions)
            return super().reducer_override(obj)

    ProgramPickler(handle).dump(program)


def save_program(
    program: Any,
    path: str | os.PathLike[str],
    metadata: dict[str, Any],
    modules_to_serialize: Iterable[ModuleType] | None = None,
) -> None:
    """Write ``program`` to the directory ``path`` (created if needed) as DSPy does.

    ``modules_to_serialize``: modules whose code is pickled by value (not by import name),
    for programs whose classes live in modules the loading side does not have.
    """
    cloudpickle = _cloudpickle()
    directory = Path(path)
    if directory.suffix:
        raise ConfigurationError(
            f"save_program=True writes a directory, so the path must have no suffix "
            f"(got {directory}); use save('{directory.with_suffix('.json')}') for the state only"
        )
    if directory.exists() and not directory.is_dir():
        raise ConfigurationError(f"cannot save the program to {directory}: it is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    modules = list(modules_to_serialize or [])
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    target = directory / PROGRAM_FILE
    tmp = directory / f".{PROGRAM_FILE}.tmp"
    try:
        with open(tmp, "wb") as handle:
            _pickle(program, handle)
        os.replace(tmp, target)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise TypeError(
            f"cannot pickle {type(program).__name__} to {target}: {exc} (remove attributes "
            "that cannot be pickled -- open files, locks, actor systems -- or save the state "
            "as JSON)"
        ) from exc
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)
    text = json.dumps(metadata, indent=2, ensure_ascii=False) + "\n"
    (directory / METADATA_FILE).write_text(text, encoding="utf-8")


def save_state_pickle(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``save("x.pkl")``: the program's state (no code, no keys) with cloudpickle, as DSPy
    writes it."""
    cloudpickle = _cloudpickle()
    logger.warning(
        "loading untrusted .pkl files can run arbitrary code; prefer module.save('x.json')"
    )
    target = Path(path)
    try:
        with open(target, "wb") as handle:
            cloudpickle.dump(state, handle)
    except OSError as exc:
        raise ProgramLoadError(f"cannot write {target}: {exc.strerror or exc}") from exc


def load_state_pickle(path: str | os.PathLike[str], allow_pickle: bool) -> dict[str, Any]:
    """The state in a ``.pkl`` file saved by ``save("x.pkl")`` (here or by DSPy); refused
    unless ``allow_pickle=True``: unpickling runs code from the file."""
    source = Path(path)
    if not allow_pickle:
        raise ProgramLoadError(
            f"load({str(source)!r}) unpickles the file, and unpickling runs code from it: "
            "pass allow_pickle=True only for a file you trust, or save as JSON"
        )
    cloudpickle = _cloudpickle()
    try:
        with open(source, "rb") as handle:
            state = cloudpickle.load(handle)
    except Exception as exc:
        raise ProgramLoadError(f"cannot unpickle {source}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise ProgramLoadError(f"{source} holds a {type(state).__name__}, not a saved state")
    return state


def load_program(path: str | os.PathLike[str], allow_pickle: bool = False) -> Any:
    """Read a program saved with ``save(dir, save_program=True)`` (here or by DSPy's layout).

    Refused unless ``allow_pickle=True``: unpickling runs code from the file.
    """
    directory = Path(path)
    if not allow_pickle:
        raise ProgramLoadError(
            f"dx.load({str(directory)!r}) unpickles the program, and unpickling runs code "
            "from the file: pass allow_pickle=True only for a directory you trust (a JSON "
            "state file needs no pickle: build the program in code and call program.load())"
        )
    if not directory.is_dir():
        raise ProgramLoadError(
            f"{directory} is not a saved program directory (save(dir, save_program=True))"
        )
    source = directory / PROGRAM_FILE
    if not source.is_file():
        raise ProgramLoadError(f"{directory} has no {PROGRAM_FILE}")
    _warn_on_version_mismatch(directory / METADATA_FILE)
    cloudpickle = _cloudpickle()
    try:
        with open(source, "rb") as handle:
            program = cloudpickle.load(handle)
    except Exception as exc:
        raise ProgramLoadError(f"cannot unpickle {source}: {type(exc).__name__}: {exc}") from exc
    return program


def dependency_versions() -> dict[str, str]:
    """The ``dependency_versions`` a saved program records (DSPy's key, read by DSPy too)."""
    return {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}


def _warn_on_version_mismatch(metadata_path: Path) -> None:
    try:
        saved = json.loads(metadata_path.read_text(encoding="utf-8")).get("dependency_versions")
    except (OSError, ValueError, AttributeError):
        logger.warning(
            "%s is missing or unreadable; loading without a version check", metadata_path
        )
        return
    if not isinstance(saved, dict):
        return
    for key, now in dependency_versions().items():
        if key in saved and saved[key] != now:
            logger.warning(
                "%s was saved with %s %s; this environment has %s: the program may behave "
                "differently",
                metadata_path.parent,
                key,
                saved[key],
                now,
            )
