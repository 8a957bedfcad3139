"""Topology validation: one test per rule, over built (unsaved) rows, plus the database-backed entry points."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from deckies.catalogue.services import all_services, fleet_singletons
from deckies.models import Decky, DeckyService, Network
from topology import services, validation
from topology.exceptions import TopologyValidationError
from topology.models import LAN, Edge
from topology.validation import Issue, ReservedSubnet

from .factories import LANFactory, TopologyFactory, make_maze

CATALOGUE = {spec.slug: spec for spec in all_services()}


class Rows:
    """A valid maze as built rows (dmz: web + gw, corp: gw + db), mutated by each test before validating."""

    def __init__(self) -> None:
        self.dmz = LAN(name="dmz", subnet="10.201.1.0/24", is_dmz=True)
        self.corp = LAN(name="corp", subnet="10.201.2.0/24")
        self.lans = [self.dmz, self.corp]
        self.web, self.gw, self.db = (Decky(pk=pk, name=name) for pk, name in ((1, "web"), (2, "gw"), (3, "db")))
        self.deckies = [self.web, self.gw, self.db]
        self.edges = [
            self.edge(self.web, self.dmz),
            self.edge(self.gw, self.dmz, is_bridge=True, forwards_l3=True),
            self.edge(self.gw, self.corp, is_bridge=True, forwards_l3=True),
            self.edge(self.db, self.corp),
        ]
        self.services: dict[Any, list[DeckyService]] = {
            decky.pk: [DeckyService(slug="ssh", config={})] for decky in self.deckies
        }

    @staticmethod
    def edge(decky: Decky, lan: LAN, ip: str | None = None, **flags: bool) -> Edge:
        return Edge(decky_id=decky.pk, lan_id=lan.pk, ip=ip, **flags)

    def add_decky(self, name: str, lan: LAN | None, ip: str | None = None) -> Decky:
        decky = Decky(pk=len(self.deckies) + 1, name=name)
        self.deckies.append(decky)
        self.services[decky.pk] = [DeckyService(slug="ssh", config={})]
        if lan is not None:
            self.edges.append(self.edge(decky, lan, ip))
        return decky

    def validate(self, reserved: tuple[ReservedSubnet, ...] = ()) -> list[Issue]:
        return validation.validate_rows(
            lans=self.lans,
            deckies=self.deckies,
            edges=self.edges,
            services=self.services,
            catalogue=CATALOGUE,
            reserved=reserved,
        )


def codes(issues: list[Issue], severity: str = "error") -> list[str]:
    return [issue.code for issue in issues if issue.severity == severity]


@pytest.fixture
def rows() -> Rows:
    return Rows()


def test_valid_maze_has_no_issue(rows: Rows) -> None:
    assert rows.validate() == []


def test_dmz_missing(rows: Rows) -> None:
    rows.dmz.is_dmz = False
    assert codes(rows.validate()) == ["DMZ_MISSING"]


def test_dmz_multiple(rows: Rows) -> None:
    rows.corp.is_dmz = True
    issues = rows.validate()
    assert codes(issues) == ["DMZ_MULTIPLE"]
    assert issues[0].target == {"lans": ["corp", "dmz"]}


def test_dmz_orphan_when_no_decky_bridges_to_a_lan(rows: Rows) -> None:
    lab = LAN(name="lab", subnet="10.201.3.0/24")
    rows.lans.append(lab)
    rows.add_decky("lab-01", lab)
    issues = rows.validate()
    assert codes(issues) == ["DMZ_ORPHAN"]
    assert issues[0].target == {"lan": "lab"}


def test_dmz_reaches_through_a_chain_of_bridges(rows: Rows) -> None:
    lab = LAN(name="lab", subnet="10.201.3.0/24")
    rows.lans.append(lab)
    rows.edges.append(rows.edge(rows.db, lab, is_bridge=True))
    rows.edges[-2].is_bridge = True  # db's corp edge: db is now a bridge corp <-> lab
    assert codes(rows.validate()) == []


def test_decky_orphan(rows: Rows) -> None:
    rows.add_decky("lonely", None)
    issues = rows.validate()
    assert codes(issues) == ["DECKY_ORPHAN"]
    assert issues[0].target == {"decky": "lonely"}


def test_lan_name_dup(rows: Rows) -> None:
    twin = LAN(name="corp", subnet="10.201.9.0/24")
    rows.lans.append(twin)
    rows.edges.append(rows.edge(rows.gw, twin, is_bridge=True))
    assert codes(rows.validate()) == ["LAN_NAME_DUP"]


def test_decky_name_dup(rows: Rows) -> None:
    rows.add_decky("web", rows.dmz)
    assert codes(rows.validate()) == ["DECKY_NAME_DUP"]


def test_ip_unknown_lan(rows: Rows) -> None:
    rows.edges.append(Edge(decky_id=rows.web.pk, lan_id=uuid.uuid4(), ip="10.9.9.9"))
    issues = rows.validate()
    assert codes(issues) == ["IP_UNKNOWN_LAN"]
    assert issues[0].target["decky"] == "web"


@pytest.mark.parametrize("ip", ["10.201.2.10", "10.201.1.0", "10.201.1.255"])
def test_ip_out_of_subnet(rows: Rows, ip: str) -> None:
    rows.edges[0].ip = ip  # web on the DMZ
    issues = rows.validate()
    assert codes(issues) == ["IP_OUT_OF_SUBNET"]
    assert issues[0].target["lan"] == "dmz"


@pytest.mark.parametrize("ip", ["10.201.1.300", "banana", "fe80::1"])
def test_ip_malformed(rows: Rows, ip: str) -> None:
    rows.edges[0].ip = ip
    assert codes(rows.validate()) == ["IP_MALFORMED"]


def test_ip_collision_between_deckies(rows: Rows) -> None:
    rows.edges[0].ip = "10.201.1.20"
    rows.edges[1].ip = "10.201.1.20"
    issues = rows.validate()
    assert codes(issues) == ["IP_COLLISION"]
    assert {issues[0].target["decky"], issues[0].target["other_decky"]} == {"web", "gw"}


def test_ip_collision_with_the_gateway(rows: Rows) -> None:
    rows.edges[3].ip = "10.201.2.1"
    assert codes(rows.validate()) == ["IP_COLLISION"]


def test_same_ip_on_different_lans_is_fine(rows: Rows) -> None:
    rows.corp.subnet = "10.201.2.0/24"
    rows.edges[0].ip = "10.201.1.5"
    rows.edges[3].ip = "10.201.2.5"
    assert rows.validate() == []


@pytest.mark.parametrize("subnet", ["10.201.2.0/33", "banana", "10.201.2.7/24", "10.201.2.0/30", "fd00::/64"])
def test_subnet_malformed(rows: Rows, subnet: str) -> None:
    rows.corp.subnet = subnet
    rows.edges[3].ip = "10.201.2.9"  # not checkable against a malformed subnet: no second issue
    issues = rows.validate()
    assert codes(issues) == ["SUBNET_MALFORMED"]
    assert issues[0].target == {"lan": "corp", "subnet": subnet}


def test_subnet_overlap_inside_the_topology(rows: Rows) -> None:
    rows.corp.subnet = "10.201.0.0/16"
    assert codes(rows.validate()) == ["SUBNET_OVERLAP"]


def test_subnet_overlap_with_a_reserved_subnet(rows: Rows) -> None:
    import ipaddress

    claim = ReservedSubnet(ipaddress.IPv4Network("10.201.2.128/25"), "LAN 'x' of topology 'other'")
    issues = rows.validate((claim,))
    assert codes(issues) == ["SUBNET_OVERLAP"]
    assert issues[0].target["owner"] == "LAN 'x' of topology 'other'"


def test_unknown_service(rows: Rows) -> None:
    rows.services[rows.db.pk] = [DeckyService(slug="no-such-service", config={})]
    issues = rows.validate()
    assert codes(issues) == ["UNKNOWN_SERVICE"]
    assert issues[0].target == {"decky": "db", "service": "no-such-service"}


def test_fleet_singleton_counts_as_unknown(rows: Rows) -> None:
    rows.services[rows.db.pk] = [DeckyService(slug=fleet_singletons()[0].slug, config={})]
    issues = rows.validate()
    assert codes(issues) == ["UNKNOWN_SERVICE"]
    assert "fleet singleton" in issues[0].message


def test_service_cfg_undeclared(rows: Rows) -> None:
    rows.services[rows.db.pk] = [DeckyService(slug="ssh", config={"no_such_key": 1})]
    issues = rows.validate()
    assert codes(issues) == ["SERVICE_CFG_UNDECLARED"]
    assert issues[0].target["keys"] == ["no_such_key"]


def test_topology_empty() -> None:
    issues = validation.validate_rows(
        lans=[LAN(name="dmz", subnet="10.201.1.0/24", is_dmz=True)], deckies=[], edges=[], services={}, catalogue={}
    )
    assert codes(issues) == ["TOPOLOGY_EMPTY"]


def test_lan_full(rows: Rows) -> None:
    rows.corp.subnet = "10.201.2.0/29"  # 5 addresses for deckies
    for index in range(4):
        rows.add_decky(f"extra-{index}", rows.corp)
    assert codes(rows.validate()) == ["LAN_FULL"]


def test_an_empty_lan_is_a_warning_not_an_orphan(rows: Rows) -> None:
    rows.lans.append(LAN(name="spare", subnet="10.201.7.0/24"))
    issues = rows.validate()
    assert codes(issues) == []
    assert codes(issues, "warning") == ["LAN_EMPTY"]


def test_warnings_do_not_block_and_come_last(rows: Rows) -> None:
    rows.lans.append(LAN(name="spare", subnet="10.201.7.0/24"))
    rows.services[rows.web.pk] = []
    rows.edges[1].is_bridge = False
    rows.edges[3].forwards_l3 = True
    rows.dmz.is_dmz = False
    issues = rows.validate()
    assert codes(issues, "warning") == [
        "FORWARDS_L3_SINGLE_HOMED",
        "BRIDGE_FLAG_MISMATCH",
        "DECKY_NO_SERVICES",
        "LAN_EMPTY",
    ]
    assert [issue.severity for issue in issues] == ["error"] + ["warning"] * 4
    assert issues[0].code == "DMZ_MISSING"


# --- database-backed -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_validate_topology_of_a_valid_maze_is_clean() -> None:
    maze = make_maze()
    assert validation.validate_topology(maze.topology) == []
    assert validation.assert_deployable(maze.topology) == []


@pytest.mark.django_db
def test_assert_deployable_lists_every_error() -> None:
    maze = make_maze()
    LAN.objects.filter(pk=maze.dmz.pk).update(is_dmz=False)
    DeckyService.objects.filter(decky=maze.db).update(slug="no-such-service")
    with pytest.raises(TopologyValidationError) as caught:
        validation.assert_deployable(maze.topology)
    assert caught.value.status_code == 400
    assert caught.value.as_dict()["code"] == "validation_failed"
    assert {issue["code"] for issue in caught.value.issues} == {"DMZ_MISSING", "UNKNOWN_SERVICE"}
    assert set(caught.value.issues[0]) == {"severity", "code", "message", "target"}


@pytest.mark.django_db
def test_subnets_of_other_live_topologies_and_fleet_networks_are_reserved() -> None:
    maze = make_maze(subnets=("10.201.1.0/24", "10.201.2.0/24"))
    other = TopologyFactory.create(name="other")
    LANFactory.create(topology=other, name="x", subnet="10.201.1.0/25")
    Network.objects.create(name="fleet", subnet="10.201.2.0/24")
    gone = TopologyFactory.create(name="gone")
    LANFactory.create(topology=gone, name="y", subnet="10.201.1.0/24")
    services.topology_transition(topology_id=gone.pk, to="torn_down")
    issues = validation.validate_topology(maze.topology)
    owners = sorted(issue.target["owner"] for issue in issues)
    assert codes(issues) == ["SUBNET_OVERLAP", "SUBNET_OVERLAP"]
    assert owners == ["LAN 'x' of topology 'other'", "fleet network 'fleet'"]


@pytest.mark.django_db
def test_bring_your_own_services_are_known() -> None:
    from deckies.models import CustomService

    maze = make_maze()
    CustomService.objects.create(slug="my-app", image="nginx:1")
    DeckyService.objects.filter(decky=maze.db).update(slug="my-app")
    assert validation.validate_topology(maze.topology) == []
