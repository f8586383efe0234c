"""The floor: the least a Flask + SQLAlchemy + PostgreSQL request can cost on this machine.

A bare app with one table, served by the same gunicorn config and database as the service,
so a service scenario's throughput can be read as a fraction of what the stack itself allows.

POST /statements/<selects>/<writes> sends the statements a service request sends (reads of a
row by key, then inserts, then one commit) and nothing else: what the bare stack allows a
request of that many statements, the ceiling of any request that needs them.

    gunicorn -c gunicorn.conf.py bench.floor:app   # serve (DATABASE_URL must be set)
    python -m bench.floor                          # create the table and the row /select reads
"""

import os
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: The row GET /select reads; seeded by `python -m bench.floor`.
SELECT_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
#: More statements than any service request sends: a bound on what a client can ask for.
MAX_STATEMENTS = 16


class Base(DeclarativeBase):
    pass


# Same session and engine options as the service (core/db.py, core/config.py), so the floor
# pays the same per-request overhead (e.g. pool_pre_ping's round trip) and the ratio isolates
# what the service's own code adds.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


class FloorItem(db.Model):
    __tablename__ = "floor_item"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )

    def to_json(self) -> dict:
        return {"id": str(self.id), "name": self.name, "created_at": self.created_at.isoformat()}


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True}
    db.init_app(app)

    @app.post("/insert")
    def insert():
        item = FloorItem(name="floor")
        db.session.add(item)
        db.session.commit()
        return item.to_json(), 201

    @app.get("/select")
    def select():
        return db.get_or_404(FloorItem, SELECT_ID).to_json()

    by_key = sa.select(FloorItem).where(FloorItem.id == sa.bindparam("id", type_=sa.Uuid()))

    @app.post("/statements/<int:selects>/<int:writes>")
    def statements(selects: int, writes: int):
        if not 0 < selects + writes <= MAX_STATEMENTS:
            return {"error": f"1 to {MAX_STATEMENTS} statements"}, 400
        for _ in range(selects):
            item = db.session.execute(by_key, {"id": SELECT_ID}).scalar_one()
        for _ in range(writes):
            # A flush each: one INSERT statement each, as the service's writes to distinct
            # tables are (a single flush would batch same-table rows into one statement).
            item = FloorItem(name="floor")
            db.session.add(item)
            db.session.flush()
        db.session.commit()
        return item.to_json(), 201 if writes else 200

    return app


app = create_app()


def init_db() -> None:
    """Create the floor's table and its /select row (once, before the workers start)."""
    with app.app_context():
        # Only the floor's own metadata: the service's schema belongs to its migrations.
        db.metadata.create_all(db.engine)
        if db.session.get(FloorItem, SELECT_ID) is None:
            db.session.add(FloorItem(id=SELECT_ID, name="select"))
            db.session.commit()


if __name__ == "__main__":
    init_db()
