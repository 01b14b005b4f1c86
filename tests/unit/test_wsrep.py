"""toolkit.wsrep: reading a node's wsrep status and variables into NodeState, state names, the quorum rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit import wsrep
from toolkit.wsrep import NodeState, is_primary, provider_option

ROOT = Path(__file__).resolve().parents[2]

STATUS = {
    "wsrep_cluster_status": "Primary",
    "wsrep_local_state": "4",
    "wsrep_local_state_comment": "Synced",
    "wsrep_ready": "ON",
    "wsrep_connected": "ON",
    "wsrep_cluster_size": "3",
    "wsrep_cluster_weight": "4",
    "wsrep_cluster_conf_id": "7",
    "wsrep_cluster_state_uuid": "8c1b-uuid",
    "wsrep_gcomm_uuid": "g-1",
    "wsrep_local_recv_queue": "2",
    "wsrep_local_recv_queue_avg": "0.5",
    "wsrep_local_send_queue": "1",
    "wsrep_flow_control_paused": "0.25",
    "wsrep_local_cert_failures": "7",
    "wsrep_evs_repl_latency": "0.0001/0.0025/0.01/0.001/40",
    "wsrep_incoming_addresses": "10.213.1.11:3306, 10.213.2.11:3306,,",
}
VARIABLES = {
    "wsrep_desync": "OFF",
    "wsrep_on": "ON",
    "wsrep_dirty_reads": "ON",
    "wsrep_cluster_name": "kgt-unit",
    "wsrep_provider_options": "base_port = 4567; gmcast.segment = 2; pc.weight = 1",
}
HEAVY = ("pydantic", "yaml", "jinja2", "pymysql", "click")


def test_every_field_of_a_synced_node() -> None:
    s = NodeState.from_rows(STATUS, VARIABLES)
    assert s == NodeState(
        cluster_status="Primary",
        local_state=4,
        local_state_comment="Synced",
        ready=True,
        connected=True,
        cluster_size=3,
        cluster_weight=4,
        conf_id=7,
        state_uuid="8c1b-uuid",
        gcomm_uuid="g-1",
        recv_queue=2,
        recv_queue_avg=0.5,
        send_queue=1,
        flow_control_paused=0.25,
        cert_failures=7,
        repl_latency=0.0025,
        incoming_addresses=("10.213.1.11:3306", "10.213.2.11:3306"),
        desync=False,
        wsrep_on=True,
        dirty_reads=True,
        cluster_name="kgt-unit",
        segment=2,
    )
    assert s.primary and s.state_name == "Synced" and s.known_conf_id == 7


def test_nothing_reported_is_none_everywhere() -> None:
    s = NodeState.from_rows({})
    assert s == NodeState()
    assert all(value is None for name, value in vars(s).items() if name != "incoming_addresses")
    assert s.incoming_addresses == ()
    assert not s.primary and s.state_name is None and s.known_conf_id is None


def test_variables_are_optional() -> None:
    s = NodeState.from_rows(STATUS)
    assert (s.desync, s.wsrep_on, s.dirty_reads, s.cluster_name, s.segment) == (None, None, None, None, None)
    assert s.cluster_size == 3


@pytest.mark.parametrize("text", ["", "three", "3.5", "0x10", "1/2"])
def test_malformed_numbers_are_none(text: str) -> None:
    keys = (
        "wsrep_local_state",
        "wsrep_cluster_size",
        "wsrep_cluster_weight",
        "wsrep_cluster_conf_id",
        "wsrep_local_recv_queue",
        "wsrep_local_send_queue",
        "wsrep_local_cert_failures",
    )
    s = NodeState.from_rows(dict.fromkeys(keys, text))
    assert (
        s.local_state,
        s.cluster_size,
        s.cluster_weight,
        s.conf_id,
        s.recv_queue,
        s.send_queue,
        s.cert_failures,
    ) == (None,) * 7


@pytest.mark.parametrize("text", ["", "fast", "1/2"])
def test_malformed_fractions_are_none(text: str) -> None:
    s = NodeState.from_rows({"wsrep_flow_control_paused": text, "wsrep_local_recv_queue_avg": text})
    assert (s.flow_control_paused, s.recv_queue_avg) == (None, None)


def test_numbers_may_carry_blanks_and_signs() -> None:
    s = NodeState.from_rows(
        {"wsrep_cluster_size": " 3 ", "wsrep_cluster_conf_id": "-1", "wsrep_flow_control_paused": " 1e-3 "}
    )
    assert (s.cluster_size, s.conf_id, s.flow_control_paused) == (3, -1, 0.001)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.0001/0.0025/0.01/0.001/40", 0.0025),
        ("0.1/0.2", 0.2),
        ("0.1", None),
        ("", None),
        ("a/b/c/d/e", None),
    ],
)
def test_repl_latency_is_the_average(text: str, expected: float | None) -> None:
    assert NodeState.from_rows({"wsrep_evs_repl_latency": text}).repl_latency == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ON", True),
        ("on", True),
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        (" ON ", True),
        ("OFF", False),
        ("0", False),
        ("no", False),
        ("garbage", False),
        ("  ", False),
        ("", None),
    ],
)
def test_switches(text: str, expected: bool | None) -> None:
    s = NodeState.from_rows(
        {"wsrep_ready": text, "wsrep_connected": text},
        {"wsrep_desync": text, "wsrep_on": text, "wsrep_dirty_reads": text},
    )
    assert (s.ready, s.connected, s.desync, s.wsrep_on, s.dirty_reads) == (expected,) * 5


def test_empty_texts_are_none() -> None:
    s = NodeState.from_rows(
        {"wsrep_cluster_state_uuid": "", "wsrep_gcomm_uuid": "", "wsrep_incoming_addresses": ""},
        {"wsrep_cluster_name": ""},
    )
    assert (s.state_uuid, s.gcomm_uuid, s.cluster_name, s.incoming_addresses) == (None, None, None, ())


def test_status_texts_are_kept_as_given() -> None:
    s = NodeState.from_rows({"wsrep_cluster_status": "", "wsrep_local_state_comment": ""})
    assert s.cluster_status == "" and s.local_state_comment == "" and not s.primary


def test_names_are_case_insensitive() -> None:
    upper = {k.upper(): v for k, v in STATUS.items()}
    mixed = {k.title(): v for k, v in VARIABLES.items()}
    assert NodeState.from_rows(upper, mixed) == NodeState.from_rows(STATUS, VARIABLES)


@pytest.mark.parametrize("status", ["non-Primary", "Disconnected", "primary", "PRIMARY"])
def test_only_primary_is_primary(status: str) -> None:
    assert not NodeState.from_rows({"wsrep_cluster_status": status}).primary


@pytest.mark.parametrize(
    "text, expected",
    [
        ("7", 7),
        ("0", 0),
        ("18446744073709551615", None),
        (str(2**63), None),
        (str(2**63 - 1), 2**63 - 1),
        ("-1", None),
        ("", None),
    ],
)
def test_known_conf_id(text: str, expected: int | None) -> None:
    s = NodeState.from_rows({"wsrep_cluster_conf_id": text})
    assert s.known_conf_id == expected
    if text == "18446744073709551615":
        assert s.conf_id == 2**64 - 1  # kept as reported


def test_state_names() -> None:
    assert wsrep.STATE_NAMES == {0: "Undefined", 1: "Joining", 2: "Donor/Desynced", 3: "Joined", 4: "Synced"}
    assert (wsrep.UNDEFINED, wsrep.JOINING, wsrep.DONOR_DESYNCED, wsrep.JOINED, wsrep.SYNCED) == (0, 1, 2, 3, 4)
    assert wsrep.PRIMARY == "Primary"


@pytest.mark.parametrize(
    "status, expected",
    [
        ({"wsrep_local_state": "2", "wsrep_local_state_comment": "Donor/Desynced"}, "Donor/Desynced"),
        ({"wsrep_local_state": "0", "wsrep_local_state_comment": "Initialized"}, "Initialized"),
        ({"wsrep_local_state": "1", "wsrep_local_state_comment": ""}, "Joining"),
        ({"wsrep_local_state": "0"}, "Undefined"),
        ({"wsrep_local_state": "9"}, None),
        ({"wsrep_local_state_comment": "Joined"}, "Joined"),
    ],
)
def test_state_name_is_the_comment_else_the_number_s_name(status: dict[str, str], expected: str | None) -> None:
    assert NodeState.from_rows(status).state_name == expected


def test_provider_option() -> None:
    assert provider_option("a = 1; gmcast.segment = 3; b=x", "gmcast.segment") == "3"
    assert provider_option("a = 1; b=x", "b") == "x"
    assert provider_option("a = 1", "gmcast.segment") is None
    assert provider_option("", "a") is None
    assert NodeState.from_rows({}, {"wsrep_provider_options": "gmcast.segment = x"}).segment is None


@pytest.mark.parametrize(
    "weight, previous, expected",
    [
        (2, 3, True),
        (1, 3, False),
        (3, 3, True),
        (2, 4, False),  # an exact half loses, on both sides
        (3, 4, True),
        (0, 0, False),
        (1, 0, True),
    ],
)
def test_is_primary_is_a_strict_majority(weight: int, previous: int, expected: bool) -> None:
    assert is_primary(weight, previous) is expected


def test_the_module_imports_nothing_heavy() -> None:
    code = (
        "import json, sys\nimport toolkit.wsrep\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{HEAVY!r} or (m.startswith('toolkit.') and m != 'toolkit.wsrep'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(done.stdout) == []
