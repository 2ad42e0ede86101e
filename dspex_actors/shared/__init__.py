"""State shared by every process through one Redis: cache, single flight, limits, breakers.

Used by ``ActorSystem(redis_url=...)``; needs the ``[redis]`` extra (redis-py).
"""

from dspex_actors.shared._keys import SharedKeys, stable_credential_id
from dspex_actors.shared._link import RedisLink, redis_address
from dspex_actors.shared._state import SharedState

__all__ = ["RedisLink", "SharedKeys", "SharedState", "redis_address", "stable_credential_id"]
