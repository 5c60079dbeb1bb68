"""fieldlearn.sim.kinds: one builder per schema class, and every kind of the schema has one."""
from __future__ import annotations

import typing

import pytest

from fieldlearn.sim import scenario as S
from fieldlearn.sim.deployments import PLACEMENTS
from fieldlearn.sim.engine import LINK_RULES
from fieldlearn.sim.faults import FAULTS
from fieldlearn.sim.kinds import Kinds
from fieldlearn.sim.mobility import MOBILITY
from fieldlearn.sim.timing import ROUND_TIMES


class Spot(S.Model):
    kind: typing.Literal["spot"] = "spot"


class Other(S.Model):
    kind: typing.Literal["other"] = "other"


def test_build_calls_the_builder_registered_for_the_block_class():
    table = Kinds("thing")

    @table.register(Spot)
    class SpotThing:
        def __init__(self, spec, n):
            self.spec, self.n = spec, n

    built = table.build(Spot(), 3)
    assert type(built) is SpotThing and built.n == 3 and Spot in table and Other not in table
    table.register(Other)(lambda spec, n: n * 2)
    assert table.build(Other(), 4) == 8


def test_an_unregistered_or_twice_registered_kind_is_refused_by_name():
    table = Kinds("thing")
    table.register(Spot)(dict)
    with pytest.raises(NotImplementedError, match="no thing kind is registered for Other"):
        table.build(Other())
    with pytest.raises(ValueError, match="a thing kind for Spot is registered already"):
        table.register(Spot)(list)


def _members(union: object) -> tuple[type, ...]:
    """The classes of an `Annotated[Union[...], Field(discriminator=...)]` schema block."""
    return typing.get_args(typing.get_args(union)[0])


@pytest.mark.parametrize("table, union", [(MOBILITY, S.Mobility), (PLACEMENTS, S.Deployment), (LINK_RULES, S.Links),
                                          (ROUND_TIMES, S.ScheduleSpec), (FAULTS, S.Fault)])
def test_every_kind_of_the_schema_has_a_runtime_builder(table, union):
    kinds = _members(union)
    assert len(kinds) >= 3 and all(k in table for k in kinds)


def test_the_vehicle_sources_are_mobility_kinds_and_vehicles_a_placement():
    """A vehicle deployment's `trace:` or `sumo:` block is its mobility kind (vehicles.py registers them)."""
    assert S.TraceSource in MOBILITY and S.SumoSource in MOBILITY and S.VehiclesDeployment in PLACEMENTS
