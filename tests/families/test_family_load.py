"""Loading a family for the service functions: with its caregivers, and, locked, as it is now."""

import pytest
import sqlalchemy as sa

from core.db import db
from families.models import Family
from families.service import get_family


def test_a_locked_load_reads_the_row_again_into_an_object_already_loaded(app, make):
    custodian = make.organization()
    family = make.family(custodian)
    with app.app_context():
        loaded = get_family(family.id)
        assert [c.given_name for c in loaded.caregivers] == ["Ngozi", "Ada"]
        # Another writer's change, which the loaded object does not know of.
        db.session.execute(sa.update(Family).where(Family.id == family.id)
                           .values(preferred_language="fr", version=Family.version + 1)
                           .execution_options(synchronize_session=False))
        assert get_family(family.id).preferred_language == "es"  # the object as loaded
        locked = get_family(family.id, lock=True, linked_to=custodian.id)
        assert locked is loaded
        assert (locked.preferred_language, locked.version) == ("fr", family.version + 1)
        db.session.rollback()


def test_an_unknown_family_is_none(app):
    import uuid

    with app.app_context():
        assert get_family(uuid.uuid4()) is None
        assert get_family(uuid.uuid4(), lock=True, linked_to=uuid.uuid4()) is None


@pytest.mark.parametrize("hold", ["lock", "share"])
def test_holding_a_family_without_naming_who_asks_is_a_programming_error(app, make, hold):
    """Not a silent None, which a caller would answer as 404 for a family that exists."""
    family = make.family(make.organization())
    with app.app_context(), pytest.raises(TypeError, match="linked_to"):
        get_family(family.id, **{hold: True})



def test_holding_a_family_both_ways_at_once_is_a_programming_error(app, make):
    custodian = make.organization()
    family = make.family(custodian)
    with app.app_context(), pytest.raises(TypeError, match="not both"):
        get_family(family.id, lock=True, share=True, linked_to=custodian.id)


@pytest.mark.no_db
def test_a_locked_load_that_waited_reads_the_caregivers_as_they_are_now(served):
    """A load that waited for another transaction's lock sees what it committed, caregivers
    included (a locking read that waits re-reads the locked row only, not what joins it)."""
    import threading
    import time

    from families.models import Caregiver
    from families.service import lock_family
    from tests.conftest import Factory

    if served.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer: the load never waits")
    custodian = Factory(served).organization()
    family = Factory(served).family(custodian)
    mother, grandmother = family.caregivers
    holding = threading.Event()

    def change():
        with served.app_context():
            lock_family(family.id)
            holding.set()
            time.sleep(0.3)  # the locked load below waits meanwhile
            db.session.execute(sa.delete(Caregiver).where(Caregiver.id == grandmother.id))
            db.session.execute(sa.update(Caregiver).where(Caregiver.id == mother.id)
                               .values(has_legal_authority=False))
            db.session.execute(sa.update(Family).where(Family.id == family.id)
                               .values(version=Family.version + 1))
            db.session.commit()

    thread = threading.Thread(target=change)
    thread.start()
    assert holding.wait(10)
    with served.app_context():
        locked = get_family(family.id, lock=True, linked_to=custodian.id)
        thread.join(30)
        assert [(c.id, c.has_legal_authority) for c in locked.caregivers] == [(mother.id, False)]
        db.session.rollback()


@pytest.mark.no_db
@pytest.mark.parametrize("hold", ["lock", "share"])
def test_an_organization_not_linked_to_the_family_never_waits_on_its_row(served, hold):
    """A stranger's look or change was answered 404 only once the custodian's work on the
    family let go of its row (or 503 at the statement timeout), while an unknown id was 404 at
    once: the wait told that the family exists. Now it holds nothing, waits for nothing, and
    gets None as for an unknown id; the family is still named for the auditors."""
    import threading
    import time

    from core.web import family_concerned
    from families.service import lock_family
    from tests.conftest import Factory

    if served.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer: a read never waits on a row")
    make = Factory(served)
    family, stranger = make.family(make.organization()), make.organization()
    holding, done = threading.Event(), threading.Event()

    def custodian_at_work():
        with served.app_context():
            lock_family(family.id)
            holding.set()
            done.wait(10)
            db.session.rollback()

    thread = threading.Thread(target=custodian_at_work)
    thread.start()
    try:
        assert holding.wait(10)
        with served.test_request_context(), served.app_context():
            started = time.monotonic()
            found = get_family(family.id, linked_to=stranger.id, **{hold: True})
            waited = time.monotonic() - started
            assert found is None
            assert family_concerned() == family.id
            db.session.rollback()
        assert waited < 2
    finally:
        done.set()
        thread.join(30)
