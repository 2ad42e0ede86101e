"""Where a batch runs: ``backend="local"`` (this process) or ``"ray"`` / a :class:`RayBackend`.

Nothing here imports Ray: the Ray executor is imported when a run first asks for it, and
a missing ``ray`` is a :class:`ConfigurationError` naming the ``[ray]`` extra.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from dspex_actors._errors import ConfigurationError
from dspex_actors.evaluate._executor import Outcome, ParallelExecutor

__all__ = ["Backend", "RayBackend", "check_backend", "run_batch"]


T = TypeVar("T")
R = TypeVar("R")


class RayBackend:
    """Run batches on Ray: ``Evaluate(..., backend=dx.RayBackend(num_workers=4))``.

    ``backend="ray"`` is a shared ``RayBackend()``. Ray is the one already initialised in
    this process (``ray.init(...)`` by the caller), else a local one started with
    ``init_options``. ``num_workers`` worker processes (None: one per CPU of the cluster),
    each a Ray actor reserving ``num_cpus`` and hosting an ActorSystem built from this
    process's current LM, adapter and system options; ``num_threads`` is split between
    them. ``redis_url``: the shared state of the workers' systems (None: the driver
    system's own, when it has one). API keys are not sent: a worker reads its key from the
    environment variable the driver's LM read it from (``ship_api_keys=True`` sends keys
    given as ``api_key=`` through Ray's object store instead). The workers live on
    between runs (their caches stay warm) until :meth:`close` or Ray's shutdown.
    """

    def __init__(
        self,
        *,
        num_workers: int | None = None,
        num_cpus: float = 1.0,
        ship_api_keys: bool = False,
        redis_url: str | None = None,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        if num_workers is not None and (
            isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1
        ):
            raise ConfigurationError(
                f"RayBackend num_workers must be a positive int or None, got {num_workers!r}"
            )
        if isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) or num_cpus < 0:
            raise ConfigurationError(f"RayBackend num_cpus must be >= 0, got {num_cpus!r}")
        if redis_url is not None and not isinstance(redis_url, str):
            raise ConfigurationError("RayBackend redis_url must be a redis:// URL or None")
        self.num_workers = num_workers
        self.num_cpus = float(num_cpus)
        self.ship_api_keys = bool(ship_api_keys)
        self.redis_url = redis_url
        self.init_options = dict(init_options or {})
        self.lock = threading.Lock()
        self.pool: Any = None
        """The live workers (owned by the Ray executor; None until the first run)."""

    def __getstate__(self) -> dict[str, Any]:
        """A backend travels (inside an optimizer) as its settings, without its workers."""
        state = dict(vars(self))
        del state["lock"], state["pool"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self.lock = threading.Lock()
        self.pool = None

    def __repr__(self) -> str:
        return (
            f"RayBackend(num_workers={self.num_workers}, num_cpus={self.num_cpus}, "
            f"ship_api_keys={self.ship_api_keys})"
        )

    def close(self) -> None:
        """Stop this backend's worker processes (a later run starts new ones)."""
        with self.lock:
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


Backend = Literal["local", "ray"] | RayBackend

_shared = {"ray": RayBackend()}


def check_backend(backend: object, where: str) -> Literal["local"] | RayBackend:
    """``"local"``, or the RayBackend ``backend`` names; a clear error for anything else."""
    if isinstance(backend, RayBackend):
        return backend
    if backend == "local":
        return "local"
    if backend == "ray":
        return _shared["ray"]
    raise ConfigurationError(
        f"{where}: backend must be 'local', 'ray' or a dx.RayBackend(...), got {backend!r}"
    )


def run_batch(
    backend: Literal["local"] | RayBackend,
    executor: ParallelExecutor,
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    parts: Mapping[str, object] | None = None,
) -> list[Outcome[T, R]]:
    """``executor.run(fn, items)`` here, or with the same settings on a RayBackend's workers.

    ``parts`` names what ``fn`` carries (program, metric), for the error when one of them
    cannot be pickled for Ray.
    """
    if backend == "local":
        return executor.run(fn, items)
    try:
        from dspex_actors.evaluate._ray import RayExecutor
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "ray":
            raise
        raise ConfigurationError(
            "backend='ray' needs Ray, which is not installed: pip install 'dspex-actors[ray]'"
        ) from None
    ray_executor = RayExecutor(executor, backend)
    return ray_executor.run(fn, items, parts=parts)
