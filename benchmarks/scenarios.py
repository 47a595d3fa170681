"""The read shapes the benchmark measures, each as the service, PostGraphile 4 and (where it has one) the floor
ask it, with variables that change from request to request.

Real clients (Apollo, Relay, urql) send the same document with new variables each time (another date range,
the next page's cursor) and ask for ``pageInfo`` on every connection, so every scenario here varies its
variables per request and most ask for ``pageInfo``. A read path that is fast only for one fixed document and
one set of values shows up as slow here.

A scenario gives, per target, the request body for the n-th request (``body(target, n)``); before measuring,
``run.py`` asks every target for the same variables and compares the answers after ``normalise`` has brought
PostGraphile's shape to the service's (cursor strings differ by design and are left out of the comparison).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .generate import ANCHOR
from .shared import global_id

Body = dict[str, Any]
Data = dict[str, Any]


@dataclass
class Caller:
    """What the queries are parametrised by: the caller's organisation and the region a region-bound client
    is limited to (the service knows both from the token; PostGraphile and the floor get them as values)."""

    organisation_id: uuid.UUID
    region_id: uuid.UUID


@dataclass
class Scenario:
    """One read shape. ``variables[target]`` is a list the load cycles through, one entry per request."""

    name: str
    caller: str  # which token the service request carries: "region" (region-bound) or "organisation"
    service: str
    peer: str | None
    variables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    floor_operation: str | None = None
    normalise_peer: Callable[[Data], Data] | None = None
    service_only_note: str = ""

    def targets(self) -> list[str]:
        names = ["service", "sqlite"]
        if self.floor_operation is not None:
            names.append("floor")
        if self.peer is not None:
            names.append("peer")
        return names

    def body(self, target: str, number: int) -> Body:
        choices = self.variables.get(target) or self.variables.get("service") or [{}]  # SQLite asks as the service
        values = choices[number % len(choices)]
        if target == "peer":
            assert self.peer is not None
            return {"query": self.peer, "variables": values}
        if target == "floor":
            return {"query": self.service, "operationName": self.floor_operation, "variables": values}
        return {"query": self.service, "variables": values}


# --- the region dashboard, three ways ----------------------------------------------------------------------

DASHBOARD = """query RegionDashboard($sessions: Int!) {
  regions { edges { node { name groups(first: 50) { edges { node { name
    facilitators { role facilitator { displayName } }
    sessions(last: $sessions) { edges { node { startsAt status
      attendanceCounts { present excused unexcused dropins } } } } } } } } } }
}"""

DASHBOARD_PAGEINFO = """query RegionDashboardPaged($sessions: Int!) {
  regions { pageInfo { hasNextPage endCursor } edges { node { name
    groups(first: 50) { pageInfo { hasNextPage endCursor } edges { node { name
      facilitators { role facilitator { displayName } }
      sessions(last: $sessions) { pageInfo { hasPreviousPage startCursor } edges { node { startsAt status
        attendanceCounts { present excused unexcused dropins } } } } } } } } } }
}"""

DASHBOARD_FRAGMENTS = """query RegionDashboardFragments($groups: Int!, $sessions: Int!, $withCounts: Boolean!) {
  regions { edges { node { ...RegionCard } } }
}
fragment RegionCard on Region { name groups(first: $groups) { edges { node { ...GroupCard } } } }
fragment GroupCard on Group {
  name
  facilitators { role facilitator { ... on Facilitator { displayName } } }
  sessions(last: $sessions) { edges { node { ...SessionRow } } }
}
fragment SessionRow on GroupSession {
  startsAt status
  attendanceCounts @include(if: $withCounts) { present excused unexcused dropins }
}"""

PEER_DASHBOARD = """query RegionDashboard($organisation: UUID!, $region: UUID!, $groups: Int!, $sessions: Int!) {
  allRegions(first: 20, orderBy: [NAME_ASC, ID_ASC], condition: {organisationId: $organisation, id: $region}) {
    pageInfo { hasNextPage endCursor }
    nodes { name groupsByRegionIdAndOrganisationId(first: $groups, orderBy: [NAME_ASC, ID_ASC],
                                  condition: {organisationId: $organisation}) {
      pageInfo { hasNextPage endCursor }
      nodes { name
        facilitatorAssignmentsByGroupIdAndOrganisationId(orderBy: [ROLE_DESC, CREATED_AT_ASC]) {
          nodes { role facilitatorByFacilitatorIdAndOrganisationId { displayName } } }
        groupSessionsByGroupIdAndOrganisationId(last: $sessions, orderBy: [STARTS_AT_ASC, ID_ASC]) {
          pageInfo { hasPreviousPage startCursor }
          nodes { startsAt status dropinCount
          present: attendancesBySessionIdAndOrganisationId(condition: {status: "present"}) { totalCount }
          excused: attendancesBySessionIdAndOrganisationId(condition: {status: "excused"}) { totalCount }
          unexcused: attendancesBySessionIdAndOrganisationId(condition: {status: "unexcused"}) { totalCount }
        } } } } } }
}"""
"""Every dashboard variant in PostGraphile's generated schema (with ``pageInfo``, which the normaliser drops
for the variants that do not ask for it), the caller's organisation and region as conditions."""


# PostGraphile names a relation after its foreign key's columns, and every reference of a tenant table holds
# the organisation too (see the tenant keys migration).
PEER_FACILITATOR = "facilitatorByFacilitatorIdAndOrganisationId"
PEER_ASSIGNMENTS = "facilitatorAssignmentsByGroupIdAndOrganisationId"
PEER_SESSION = "groupSessionBySessionIdAndOrganisationId"
PEER_GROUP = "groupByGroupIdAndOrganisationId"


def _session_counts(session: Data) -> Data:
    return {"present": session["present"]["totalCount"], "excused": session["excused"]["totalCount"],
            "unexcused": session["unexcused"]["totalCount"], "dropins": session["dropinCount"]}  # fmt: skip


def peer_dashboard(paged: bool) -> Callable[[Data], Data]:
    """PostGraphile's dashboard in the service's shape; ``paged`` keeps the ``pageInfo`` flags."""

    def normalise(data: Data) -> Data:
        regions = []
        for region in data["allRegions"]["nodes"]:
            groups = []
            for group in region["groupsByRegionIdAndOrganisationId"]["nodes"]:
                facilitators = [{"role": item["role"].upper(), "facilitator": item[PEER_FACILITATOR]}
                                for item in group[PEER_ASSIGNMENTS]["nodes"]]  # fmt: skip
                sessions = [{"node": {"startsAt": s["startsAt"], "status": s["status"].upper(),
                                      "attendanceCounts": _session_counts(s)}}
                            for s in group["groupSessionsByGroupIdAndOrganisationId"]["nodes"]]  # fmt: skip
                session_page: Data = {"edges": sessions}
                if paged:
                    info = group["groupSessionsByGroupIdAndOrganisationId"]["pageInfo"]
                    session_page = {"pageInfo": {"hasPreviousPage": info["hasPreviousPage"]}, **session_page}
                node: Data = {"name": group["name"], "facilitators": facilitators, "sessions": session_page}
                groups.append({"node": node})
            group_page: Data = {"edges": groups}
            if paged:
                info = region["groupsByRegionIdAndOrganisationId"]["pageInfo"]
                group_page = {"pageInfo": {"hasNextPage": info["hasNextPage"]}, **group_page}
            regions.append({"node": {"name": region["name"], "groups": group_page}})
        region_page: Data = {"edges": regions}
        if paged:
            region_page = {"pageInfo": {"hasNextPage": data["allRegions"]["pageInfo"]["hasNextPage"]}, **region_page}
        return {"regions": region_page}

    return normalise


# --- the sessions page: a date filter, and later pages by cursor -------------------------------------------

SESSIONS = """query SessionPage($from: DateTime!) {
  sessions(first: 100, filter: {startsFrom: $from}) {
    pageInfo { hasNextPage endCursor }
    edges { node { id startsAt endsAt status dropinCount cancellationReason } } }
}"""

SESSIONS_AFTER = """query SessionPageAfter($after: String) {
  sessions(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id startsAt endsAt status dropinCount cancellationReason } } }
}"""

PEER_SESSIONS = """query SessionPage($organisation: UUID!, $region: UUID!, $from: Datetime, $after: Cursor) {
  allGroupSessions(first: 100, after: $after, orderBy: [STARTS_AT_ASC, ID_ASC],
                   condition: {organisationId: $organisation},
                   filter: {startsAt: {greaterThanOrEqualTo: $from},
                            groupByGroupIdAndOrganisationId: {regionId: {equalTo: $region}}}) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id startsAt endsAt status dropinCount cancellationReason } } }
}"""
"""The session page in PostGraphile: the caller's region through the session's group (a relation filter of
postgraphile-plugin-connection-filter; core PostGraphile 4 has none)."""


def peer_sessions(data: Data) -> Data:
    page = data["allGroupSessions"]
    edges = [{"node": edge["node"] | {"id": global_id("GroupSession", edge["node"]["id"]),
                                      "status": edge["node"]["status"].upper()}}
             for edge in page["edges"]]  # fmt: skip
    return {"sessions": {"pageInfo": {"hasNextPage": page["pageInfo"]["hasNextPage"]}, "edges": edges}}


# --- people: participants -> enrolments -> attendance ------------------------------------------------------

PARTICIPANTS = """query ParticipantAttendance($after: String) {
  participants(first: 50, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { reference enrolments { status group { name } attendance { status session { startsAt } } } } }
}"""

PEER_PARTICIPANTS = """query ParticipantAttendance($organisation: UUID!, $region: UUID!, $after: Cursor) {
  allParticipants(first: 50, after: $after, orderBy: [REFERENCE_ASC, ID_ASC],
                  condition: {organisationId: $organisation, regionId: $region}, filter: {erasedAt: {isNull: true}}) {
    pageInfo { hasNextPage endCursor }
    nodes { reference
      enrolmentsByParticipantIdAndOrganisationId(orderBy: [REQUESTED_AT_ASC, ID_ASC]) {
        nodes { status groupId groupByGroupIdAndOrganisationId { name } } }
      attendancesByParticipantIdAndOrganisationId(orderBy: [RECORDED_AT_ASC, ID_ASC]) {
        nodes { status groupSessionBySessionIdAndOrganisationId { startsAt groupId } } } } }
}"""
"""PostGraphile cannot correlate a participant's attendance with one enrolment's group inside the query, so it
fetches the participant's attendance once and the normaliser files each mark under its group's enrolment."""


def peer_participants(data: Data) -> Data:
    page = data["allParticipants"]
    nodes = []
    for person in page["nodes"]:
        marks = person["attendancesByParticipantIdAndOrganisationId"]["nodes"]
        enrolments = []
        for enrolment in person["enrolmentsByParticipantIdAndOrganisationId"]["nodes"]:
            attendance = [
                {"status": mark["status"].upper(), "session": {"startsAt": mark[PEER_SESSION]["startsAt"]}}
                for mark in marks
                if mark[PEER_SESSION]["groupId"] == enrolment["groupId"]
            ]
            enrolments.append({"status": enrolment["status"].upper(), "group": enrolment[PEER_GROUP],
                               "attendance": attendance})  # fmt: skip
        nodes.append({"reference": person["reference"], "enrolments": enrolments})
    return {"participants": {"pageInfo": {"hasNextPage": page["pageInfo"]["hasNextPage"]}, "nodes": nodes}}


# --- roll-ups: attendance rate of a region's groups --------------------------------------------------------

ATTENDANCE_RATE = """query AttendanceRates($region: ID!, $from: DateTime!, $to: DateTime!) {
  groups(first: 50, filter: {regionIds: [$region]}) { nodes { name attendanceRate(from: $from, to: $to) } }
}"""

PEER_ATTENDANCE_RATE = """query AttendanceRates($organisation: UUID!, $region: UUID!,
                                                 $from: Datetime!, $to: Datetime!) {
  allGroups(first: 50, orderBy: [NAME_ASC, ID_ASC], condition: {organisationId: $organisation, regionId: $region}) {
    nodes { name groupSessionsByGroupIdAndOrganisationId(condition: {status: "held"},
                                        filter: {startsAt: {greaterThanOrEqualTo: $from, lessThan: $to}}) {
      nodes { present: attendancesBySessionIdAndOrganisationId(condition: {status: "present"}) { totalCount }
              recorded: attendancesBySessionIdAndOrganisationId { totalCount } } } } }
}"""
"""PostGraphile 4 has no aggregates without a plugin: it returns each held session's two counts and the
normaliser adds them up as the service's rate does (present ÷ recorded, 4 decimals)."""


def peer_attendance_rate(data: Data) -> Data:
    nodes = []
    for group in data["allGroups"]["nodes"]:
        sessions = group["groupSessionsByGroupIdAndOrganisationId"]["nodes"]
        present = sum(session["present"]["totalCount"] for session in sessions)
        recorded = sum(session["recorded"]["totalCount"] for session in sessions)
        nodes.append({"name": group["name"], "attendanceRate": round(present / recorded, 4) if recorded else None})
    return {"groups": {"nodes": nodes}}


# --- the organisation's groups with their facilitators -----------------------------------------------------

GROUPS = """query GroupsWithFacilitators($statuses: [GroupStatus!]) {
  groups(first: 100, filter: {statuses: $statuses}) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id name status capacity facilitators { role facilitator { displayName } } } }
}"""

PEER_GROUPS = """query GroupsWithFacilitators($organisation: UUID!, $statuses: [String!]) {
  allGroups(first: 100, orderBy: [NAME_ASC, ID_ASC], condition: {organisationId: $organisation},
            filter: {status: {in: $statuses}}) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id name status capacity
      facilitatorAssignmentsByGroupIdAndOrganisationId(orderBy: [ROLE_DESC, CREATED_AT_ASC]) {
        nodes { role facilitatorByFacilitatorIdAndOrganisationId { displayName } } } } }
}"""


def peer_groups(data: Data) -> Data:
    page = data["allGroups"]
    nodes = [{"id": global_id("Group", group["id"]), "name": group["name"], "status": group["status"].upper(),
              "capacity": group["capacity"],
              "facilitators": [{"role": item["role"].upper(), "facilitator": item[PEER_FACILITATOR]}
                               for item in group[PEER_ASSIGNMENTS]["nodes"]]}
             for group in page["nodes"]]  # fmt: skip
    return {"groups": {"totalCount": page["totalCount"], "pageInfo": {"hasNextPage": page["pageInfo"]["hasNextPage"]},
                       "nodes": nodes}}  # fmt: skip


# --- the evaluator's rows ----------------------------------------------------------------------------------

EVALUATION = """query EvaluationRows($after: String) {
  evaluation { responses(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { pseudonym region groupTopic timepoint instrumentCode instrumentVersion score band
                   completedWeek sessionsAttended } } } }
}"""


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def date_windows(count: int) -> list[tuple[datetime, datetime]]:
    """``count`` different 12-week windows ending around the generated data's anchor (a client's date picker)."""
    return [(ANCHOR - timedelta(weeks=16) + timedelta(days=day), ANCHOR + timedelta(days=day - 4))
            for day in range(count)]  # fmt: skip


def build(caller: Caller) -> list[Scenario]:
    """Every scenario with its fixed variables; cursor lists are filled in by ``run.py`` (they need a server)."""
    peer_base = {"organisation": str(caller.organisation_id), "region": str(caller.region_id)}
    windows = date_windows(24)
    dashboard_lengths = [20, 19, 18]
    statuses: list[list[str]] = [["ACTIVE"], ["ACTIVE", "PAUSED"], ["ACTIVE", "PAUSED", "CLOSED"]]
    return [
        Scenario(
            "dashboard",
            "region",
            DASHBOARD,
            PEER_DASHBOARD,
            {
                "service": [{"sessions": n} for n in dashboard_lengths],
                "peer": [peer_base | {"groups": 50, "sessions": n} for n in dashboard_lengths],
            },
            floor_operation="RegionDashboard",
            normalise_peer=peer_dashboard(False),
        ),
        Scenario(
            "dashboard + pageInfo",
            "region",
            DASHBOARD_PAGEINFO,
            PEER_DASHBOARD,
            {
                "service": [{"sessions": n} for n in dashboard_lengths],
                "peer": [peer_base | {"groups": 50, "sessions": n} for n in dashboard_lengths],
            },
            normalise_peer=peer_dashboard(True),
        ),
        Scenario(
            "dashboard, fragments",
            "region",
            DASHBOARD_FRAGMENTS,
            PEER_DASHBOARD,
            {
                "service": [{"groups": 50, "sessions": n, "withCounts": True} for n in dashboard_lengths],
                "peer": [peer_base | {"groups": 50, "sessions": n} for n in dashboard_lengths],
                "floor": [{"sessions": n} for n in dashboard_lengths],
            },
            floor_operation="RegionDashboard",
            normalise_peer=peer_dashboard(False),
        ),
        Scenario(
            "sessions page 1",
            "region",
            SESSIONS,
            PEER_SESSIONS,
            {
                "service": [{"from": _iso(start)} for start, _ in windows],
                "peer": [peer_base | {"from": _iso(start)} for start, _ in windows],
                "floor": [{"from": _iso(start)} for start, _ in windows],
            },
            floor_operation="SessionPage",
            normalise_peer=peer_sessions,
        ),
        Scenario(
            "sessions by cursor",
            "region",
            SESSIONS_AFTER,
            PEER_SESSIONS,
            floor_operation="SessionPageAfter",
            normalise_peer=peer_sessions,
        ),
        Scenario(
            "participants -> attendance", "region", PARTICIPANTS, PEER_PARTICIPANTS, normalise_peer=peer_participants
        ),
        Scenario(
            "attendanceRate",
            "region",
            ATTENDANCE_RATE,
            PEER_ATTENDANCE_RATE,
            {
                "service": [
                    {"region": global_id("Region", caller.region_id), "from": _iso(start), "to": _iso(end)}
                    for start, end in windows
                ],
                "peer": [peer_base | {"from": _iso(start), "to": _iso(end)} for start, end in windows],
            },
            normalise_peer=peer_attendance_rate,
        ),
        Scenario(
            "100 groups + facilitators",
            "organisation",
            GROUPS,
            PEER_GROUPS,
            {
                "service": [{"statuses": s} for s in statuses],
                "peer": [
                    {"organisation": peer_base["organisation"], "statuses": [x.lower() for x in s]} for s in statuses
                ],
            },
            normalise_peer=peer_groups,
        ),
        Scenario(
            "evaluator responses",
            "evaluator",
            EVALUATION,
            None,
            service_only_note="evaluator responses: service only (pseudonyms are keyed hashes the service "
            "computes, and consent rules need joins PostGraphile cannot take as conditions)",
        ),
    ]


def without_cursors(value: Any) -> Any:
    """An answer with cursor strings left out: each server's cursors are its own encoding of the same position."""
    if isinstance(value, dict):
        return {key: without_cursors(item) for key, item in value.items()
                if key not in ("cursor", "endCursor", "startCursor")}  # fmt: skip
    if isinstance(value, list):
        return [without_cursors(item) for item in value]
    return value
