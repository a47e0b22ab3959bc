"""names folded for search: any script in Latin letters, no accents, no case

Revision ID: 0007
Revises: 0006

Fills the new column for every stored organisation, in batches, with the same function the model
uses, so a name typed as "Lodz" or "Thessaloniki" finds "Łódź" and "Θεσσαλονίκη".
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from matcher.db import fold_name

    op.add_column("organisation", sa.Column("name_folded", sa.String(600), nullable=True))
    op.create_index("ix_organisation_name_folded", "organisation", ["name_folded"])
    bind = op.get_bind()
    organisation = sa.table("organisation", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("name_folded", sa.String))
    rows = bind.execute(sa.select(organisation.c.id, organisation.c.name).where(organisation.c.name.is_not(None))).all()
    for start in range(0, len(rows), 5000):
        batch = [{"oid": i, "folded": fold_name(n)[:600]} for i, n in rows[start : start + 5000]]
        bind.execute(
            organisation.update().where(organisation.c.id == sa.bindparam("oid")).values(name_folded=sa.bindparam("folded")),
            batch,
        )


def downgrade() -> None:
    op.drop_index("ix_organisation_name_folded", table_name="organisation")
    op.drop_column("organisation", "name_folded")
