"""The capture clock: how far the capture has got, robust to a frame stamped far ahead.

The tracker retires connections by the capture clock (a close grace period after they closed,
hours after they went idle), so the clock must not be moved by one bad timestamp: a single frame
dated hours ahead (a clock step on the capturing host, an unsorted `mergecap -a`) would make
every live connection look idle and retire it, splitting each into two connections and losing
the findings that needed both halves.

So the clock is the latest packet time so far, except that a frame more than STEP_SECONDS ahead
of it moves it only when CONFIRM frames in a row are that far ahead: then the capture really
went on there (an idle gap, two captures joined). Until then such frames are `ignored` by the
clock (their connections still see their own times).
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
        self.ignored = 0  # frames stamped too far ahead to move the clock, so far
        self._ahead = 0  # such frames in a row just now

    def step(self, time: float) -> float:
        """The clock after a frame stamped `time`."""
        now = self.now
        if time - now <= STEP_SECONDS or now == float("-inf"):
            if time > now:
                self.now = time
            self._ahead = 0
        else:
            self._ahead += 1
            if self._ahead >= CONFIRM:
                self.now = time
                self._ahead = 0
            else:
                self.ignored += 1
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
            # (the usual case, in one pass of numpy).
            self.now = float(clock[-1])
            self._ahead = 0
            return clock
        step = self.step
        return np.array([step(t) for t in times.tolist()], np.float64)

    def copy(self) -> CaptureClock:
        twin = CaptureClock()
        twin.now, twin.ignored, twin._ahead = self.now, self.ignored, self._ahead
        return twin
