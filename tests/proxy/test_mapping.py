"""The mapping table (services-and-cli.md §A18.1, with the C-8 allocation fix)."""

from __future__ import annotations

import ipaddress
import json
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay.address import Addr
from pilotgw.proxy.mapping import MappingError, MappingTable, parse_subnet

IP = ipaddress.IPv4Address


def table(cidr: str = "10.4.0.0/16") -> MappingTable:
    return MappingTable(parse_subnet(cidr))


def test_allocation_starts_at_dot_one_and_walks_bytewise():
    t = table()
    assert [t.map(Addr(0, n))[0].local_ip for n in range(1, 4)] == [IP("10.4.0.1"), IP("10.4.0.2"), IP("10.4.0.3")]
    t2 = table()
    t2._cursor = int(IP("10.4.0.255"))
    assert t2.map(Addr(0, 1))[0].local_ip == IP("10.4.0.255")
    assert t2.map(Addr(0, 2))[0].local_ip == IP("10.4.1.0")


def test_allocation_inside_a_subnet_not_ending_in_zero():
    t = table("10.4.0.128/25")
    assert t.map(Addr(0, 5))[0].local_ip == IP("10.4.0.129")


def test_explicit_ip_rules_and_reference_messages():
    t = table()
    assert t.map(Addr(0, 5), "10.4.9.9")[0].local_ip == IP("10.4.9.9")
    with pytest.raises(MappingError) as err:
        t.map(Addr(0, 6), "10.4.9.9")
    assert (str(err.value), err.value.code) == ("IP 10.4.9.9 already mapped", "already_exists")
    with pytest.raises(MappingError) as err:
        t.map(Addr(0, 6), "192.168.1.1")
    assert (str(err.value), err.value.code) == ("IP 192.168.1.1 not in subnet 10.4.0.0/16", "invalid_argument")
    with pytest.raises(MappingError) as err:
        t.map(Addr(0, 6), "not-an-ip")
    assert err.value.code == "invalid_argument"


def test_mapping_a_mapped_address_returns_its_ip():
    t = table()
    first, new = t.map(Addr(0, 5))
    again, new_again = t.map(Addr(0, 5), "10.4.7.7")
    assert (new, new_again) == (True, False)
    assert again == first and len(t) == 1


def test_used_addresses_skipped_and_freed_ones_not_reused():
    t = table()
    t.map(Addr(0, 9), "10.4.0.2")
    assert t.map(Addr(0, 1))[0].local_ip == IP("10.4.0.1")
    assert t.map(Addr(0, 3))[0].local_ip == IP("10.4.0.3")
    t.unmap("10.4.0.1")
    assert t.map(Addr(0, 4))[0].local_ip == IP("10.4.0.4")


def test_unmap_removes_both_directions_and_unknown_is_not_found():
    t = table()
    t.map(Addr(0, 5))
    assert t.unmap("10.4.0.1").addr == Addr(0, 5)
    assert t.by_addr(Addr(0, 5)) is None and t.by_ip(IP("10.4.0.1")) is None
    with pytest.raises(MappingError) as err:
        t.unmap("10.4.0.1")
    assert (str(err.value), err.value.code) == ("no mapping for 10.4.0.1", "not_found")


def test_subnet_exhausted():
    t = table("10.4.0.0/30")
    ips = [t.map(Addr(0, n))[0].local_ip for n in range(1, 4)]
    assert ips == [IP("10.4.0.1"), IP("10.4.0.2"), IP("10.4.0.3")]
    with pytest.raises(MappingError) as err:
        t.map(Addr(0, 4))
    assert (str(err.value), err.value.code) == ("subnet exhausted", "internal")


def test_top_of_address_space_does_not_overflow():
    t = table("255.255.255.254/31")
    assert t.map(Addr(0, 1))[0].local_ip == IP("255.255.255.255")
    with pytest.raises(MappingError):
        t.map(Addr(0, 2))


@pytest.mark.parametrize("text", ["10.4.0.0/33", "nonsense", "10.4.0.0", "::1/64"])
def test_bad_subnets(text):
    with pytest.raises(MappingError) as err:
        parse_subnet(text)
    assert str(err.value).startswith("parse subnet: ") and err.value.code == "invalid_argument"


def test_host_bits_are_dropped_as_in_go():
    assert parse_subnet("10.4.0.1/16") == ipaddress.IPv4Network("10.4.0.0/16")


def test_persistence_round_trip_keeps_cursor(tmp_path):
    path = tmp_path / "m.json"
    t = table()
    t.map(Addr(0, 1))
    t.map(Addr(0, 2))
    t.unmap("10.4.0.2")
    t.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded, dropped = MappingTable.load(path, parse_subnet("10.4.0.0/16"))
    assert dropped == [] and loaded.mappings() == t.mappings()
    assert loaded.map(Addr(0, 3))[0].local_ip == IP("10.4.0.3")  # .2 stays retired


def test_load_into_another_subnet_drops_outsiders(tmp_path):
    path = tmp_path / "m.json"
    t = table()
    t.map(Addr(0, 1), "10.4.0.1")
    t.map(Addr(0, 2), "10.4.200.1")
    t.save(path)
    loaded, dropped = MappingTable.load(path, parse_subnet("10.4.0.0/24"))
    assert [m.local_ip for m in loaded.mappings()] == [IP("10.4.0.1")]
    assert [m.local_ip for m in dropped] == [IP("10.4.200.1")]
    assert loaded.map(Addr(0, 3))[0].local_ip == IP("10.4.0.2")


def test_missing_file_is_empty_table(tmp_path):
    loaded, dropped = MappingTable.load(tmp_path / "none.json", parse_subnet("10.4.0.0/16"))
    assert len(loaded) == 0 and dropped == []


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"[]",
        json.dumps({"version": 1, "subnet": "10.4.0.0/16", "next": 1, "mappings": [{"local_ip": "x"}]}).encode(),
        json.dumps(
            {
                "version": 1,
                "subnet": "10.4.0.0/16",
                "next": 1,
                "mappings": [{"local_ip": "10.4.0.1", "pilot_addr": "zz"}],
            }
        ).encode(),
        json.dumps({"version": 1, "subnet": "10.4.0.0/16", "next": "x", "mappings": []}).encode(),
    ],
)
def test_corrupt_file_is_a_clear_error(content):
    with pytest.raises(MappingError) as err:
        MappingTable.from_json(content, parse_subnet("10.4.0.0/16"))
    assert str(err.value).startswith("load mappings: ") and err.value.code == "internal"


@settings(max_examples=300)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=60))
def test_table_stays_a_bijection_inside_the_subnet(ops):
    t = table("10.4.0.0/27")
    for is_map, n in ops:
        try:
            if is_map:
                t.map(Addr(0, n))
            else:
                t.unmap(IP(int(IP("10.4.0.0")) + n))
        except MappingError as exc:
            assert exc.code in {"not_found", "internal"}
    ips = [m.local_ip for m in t.mappings()]
    addrs = [m.addr for m in t.mappings()]
    assert len(set(ips)) == len(ips) and len(set(addrs)) == len(addrs)
    assert all(ip in t.subnet and ip != t.subnet.network_address for ip in ips)
    for m in t.mappings():
        assert t.by_ip(m.local_ip) == m and t.by_addr(m.addr) == m
