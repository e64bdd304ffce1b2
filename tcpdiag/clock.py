"""The capture clock: how far the capture has got, robust to a frame stamped far ahead.

The tracker retires connections by the capture clock (a close grace period after they closed,
hours after they went idle), so the clock must not be moved by one bad timestamp: a single frame
dated hours ahead (a clock step on the capturing host, an unsorted `mergecap -a`) would make
every live connection look idle and retire it, splitting each into two connections and losing
the findings that needed both halves.

So the clock is the latest packet time so far, except that a frame more than STEP_SECONDS ahead
of it moves it only when CONFIRM frames in a row are that far ahead: then the capture really
went on there (an idle gap, two captures joined). Until then such frames do not move the clock
(their connections still see their own times). Those of a run that a frame at the clock's time
then ends were stamped ahead of the frames around them: the clock counts them (`ignored`). Those
of a run that the frames after it confirm are not counted (a real idle gap of a minute or more
is common: a keep-alive connection, a quiet hour), nor those of a run the capture ends on (they
moved nothing the end of the capture does not move).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

# A forward step of the timestamps larger than this is suspect (retirement is judged in seconds:
# the close grace period is 5 s), and is believed after this many frames in a row.
STEP_SECONDS = 60.0
CONFIRM = 8


class CaptureClock:
    __slots__ = ("_ahead", "ignored", "now")

    def __init__(self) -> None:
        self.now = float("-inf")
        # frames of runs stamped too far ahead to move the clock that the frames after them
        # did not follow, so far
        self.ignored = 0
        self._ahead = 0  # frames too far ahead to move the clock, in a row just now

    def step(self, time: float) -> float:
        """The clock after a frame stamped `time`."""
        now = self.now
        if time - now <= STEP_SECONDS or now == float("-inf"):
            if time > now:
                self.now = time
            self.ignored += self._ahead  # (a run far ahead, and then the clock's time again)
            self._ahead = 0
        else:
            self._ahead += 1
            if self._ahead >= CONFIRM:
                self.now = time  # (the capture went on there: none of the run is counted)
                self._ahead = 0
        return self.now

    def steps(self, times: F64) -> F64:
        """The clock after each of these frames, as `step` would give it one by one."""
        if not len(times):
            return np.zeros(0, np.float64)
        clock = np.maximum.accumulate(times)
        np.maximum(clock, self.now, out=clock)
        before = np.empty_like(clock)
        before[0] = self.now
        before[1:] = clock[:-1]
        far = times - before > STEP_SECONDS
        far[0] &= self.now != float("-inf")  # the first frame of all sets the clock
        if not far.any():
            # No frame far ahead of the latest before it: the clock is their running maximum
            # (the usual case, in one pass of numpy); the first ends a run far ahead, if one
            # was under way.
            self.now = float(clock[-1])
            self.ignored += self._ahead
            self._ahead = 0
            return clock
        step = self.step
        return np.array([step(t) for t in times.tolist()], np.float64)

    def copy(self) -> CaptureClock:
        twin = CaptureClock()
        twin.now, twin.ignored, twin._ahead = self.now, self.ignored, self._ahead
        return twin
