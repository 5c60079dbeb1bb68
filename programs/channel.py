"""Channel: the devices on a shortest path from a `source` to a `target`, widened by `width` (plus its gradient)."""
from fieldlearn import sense
from fieldlearn.lib import channel, distance_to


def program(source: str = "source", target: str = "target", width: float = 1.0) -> dict:
    """Outputs `channel` (true on the path, within `width`) and `gradient` (distance to the source)."""
    src, dst = sense(source), sense(target)
    return {"channel": channel(src, dst, width), "gradient": distance_to(src)}
