"""The console's login tally: per minute, an hour long, refusals by reason."""

from thingport.services.activity import MINUTES, LoginActivity


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_counts_land_in_their_minute_and_age_out_after_an_hour() -> None:
    clock = Clock()
    tally = LoginActivity(clock)
    tally.accepted()
    tally.refused("credential")
    tally.refused("credential")
    clock.now += 60
    tally.accepted()
    tally.refused("throttled")
    hour = tally.last_hour()
    assert len(hour) == MINUTES
    assert hour[-1].start == int(clock.now) // 60 * 60_000
    assert (hour[-2].accepted, hour[-2].refused, hour[-2].refused_total) == (1, {"credential": 2}, 2)
    assert (hour[-1].accepted, hour[-1].refused) == (1, {"throttled": 1})
    assert all(m.accepted == 0 and not m.refused for m in hour[:-2])
    clock.now += 60 * (MINUTES - 1)  # the first minute has just left the hour
    assert sum(m.accepted for m in tally.last_hour()) == 1
    tally.accepted()  # a count in a new minute drops the minutes that left the hour
    assert len(tally._minutes) == 2
    clock.now += 3600 * 5
    assert sum(m.accepted + m.refused_total for m in tally.last_hour()) == 0
