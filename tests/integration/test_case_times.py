"""A report time given in another zone (China time, +08:00) is stored as the same instant, on both databases:
SQLite keeps a time's wall clock whatever its zone, so intake converts to UTC first (found in review: a +08:00
hotline time read back 8 hours off on SpatiaLite, right on PostGIS)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from gridmap.boundaries.areas import load_index
from gridmap.cases.bulk import create_cases
from gridmap.cases.intake import NewCase, create_case, utc
from gridmap.store.tables import Case, CaseEvent
from tests.helpers import inside

CST = dt.timezone(dt.timedelta(hours=8))
REPORTED = dt.datetime(2026, 11, 20, 9, 30, tzinfo=CST)  # 01:30 UTC
NOW = dt.datetime(2026, 11, 20, 18, 0, tzinfo=CST)


def _stored(session, case_id: int) -> tuple[dt.datetime, dt.datetime]:
    session.expire_all()
    at = session.scalar(sa.select(Case.reported_at).where(Case.id == case_id))
    event = session.scalar(sa.select(CaseEvent.at).where(CaseEvent.case_id == case_id, CaseEvent.action == "reported"))
    return utc(at), utc(event)


def test_a_report_time_in_china_time_is_stored_as_the_same_instant(session):
    index = load_index(session)
    lon, lat = inside(index)
    one = create_case(
        session,
        index,
        NewCase(title="路灯不亮", lon=lon, lat=lat, source="hotline", external_ref="TZ-1", reported_at=REPORTED),
        now=NOW,
    )
    session.flush()
    many = create_cases(
        session,
        index,
        [NewCase(title="井盖缺失", lon=lon, lat=lat, source="hotline", external_ref="TZ-2", reported_at=REPORTED)],
        now=NOW,
    )
    session.flush()
    expected = REPORTED.astimezone(dt.UTC)
    assert _stored(session, one.id) == (expected, expected)
    assert _stored(session, many[0].id) == (expected, expected)
    # and it is found by a filter in China time around that instant
    found = session.scalars(
        sa.select(Case.id).where(
            Case.reported_at >= utc(REPORTED - dt.timedelta(minutes=1)),
            Case.reported_at < utc(REPORTED + dt.timedelta(minutes=1)),
            Case.external_ref.in_(["TZ-1", "TZ-2"]),
        )
    ).all()
    assert sorted(found) == sorted([one.id, many[0].id])
