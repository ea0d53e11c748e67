"""When a failed attempt runs again: the backoff ladder, with jitter."""

from __future__ import annotations

import random
from collections.abc import Sequence

# Up to this fraction of the step is added, so jobs that failed together (a platform outage)
# do not all come back in the same second.
JITTER = 0.1


def backoff_s(attempt: int, ladder: Sequence[int], *, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): the ladder's step
    for that attempt (its last step once past the end) plus up to 10 % jitter. An attempt
    below 1 counts as 1; an empty ladder means no wait."""
    if not ladder:
        return 0.0
    step = ladder[min(max(attempt, 1), len(ladder)) - 1]
    return step + step * JITTER * (rng or random).random()
