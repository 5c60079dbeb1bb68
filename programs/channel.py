"""Channel: the devices on a shortest path from a `source` to a `target`, widened by `width` (plus its gradient)."""
from typing import Annotated

from annotated_types import Ge

from fieldlearn import program, sense
from fieldlearn.lib import channel as channel_block
from fieldlearn.lib import distance_to


@program
def channel_with_gradient(source: str = "source", target: str = "target", width: Annotated[float, Ge(0)] = 1.0) -> dict:
    """Outputs `channel` (true on the path, within `width`) and `gradient` (distance to the source)."""
    src, dst = sense(source), sense(target)
    return {"channel": channel_block(src, dst, width), "gradient": distance_to(src)}
