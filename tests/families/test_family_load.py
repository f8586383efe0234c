"""Loading a family for the service functions: with its caregivers, and, locked, as it is now."""

import sqlalchemy as sa

from core.db import db
from families.models import Family
from families.service import get_family


def test_a_locked_load_reads_the_row_again_into_an_object_already_loaded(app, make):
    family = make.family(make.organization())
    with app.app_context():
        loaded = get_family(family.id)
        assert [c.given_name for c in loaded.caregivers] == ["Ngozi", "Ada"]
        # Another writer's change, which the loaded object does not know of.
        db.session.execute(sa.update(Family).where(Family.id == family.id)
                           .values(preferred_language="fr", version=Family.version + 1)
                           .execution_options(synchronize_session=False))
        assert get_family(family.id).preferred_language == "es"  # the object as loaded
        locked = get_family(family.id, lock=True)
        assert locked is loaded
        assert (locked.preferred_language, locked.version) == ("fr", family.version + 1)
        db.session.rollback()


def test_an_unknown_family_is_none(app):
    import uuid

    with app.app_context():
        assert get_family(uuid.uuid4()) is None
        assert get_family(uuid.uuid4(), lock=True) is None
