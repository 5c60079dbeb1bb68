"""Gradient: every device's distance to the nearest `source` device, over link lengths (self-stabilising)."""
from fieldlearn import program, sense
from fieldlearn.lib import distance_to


@program
def gradient(source: str = "source") -> dict:
    """The distance to the nearest device whose sensor `source` is true, as the output `gradient`."""
    return {"gradient": distance_to(sense(source))}
