"""one organisation without PIC, OID or Erasmus code per normalised name and country

Revision ID: 0006
Revises: 0005

Organisations already stored twice under one key (possible before this constraint, when two imports
ran at once) are kept: every one but the oldest loses its name key, as a registration of a distinct
organisation of the same name does, so nothing is deleted and an administrator can merge them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

IDLESS = "pic IS NULL AND oid IS NULL AND erasmus_code IS NULL"


def upgrade() -> None:
    op.execute(
        sa.text(
            f"UPDATE organisation SET name_key = NULL WHERE {IDLESS} AND name_key IS NOT NULL AND id NOT IN "
            f"(SELECT MIN(id) FROM organisation WHERE {IDLESS} AND name_key IS NOT NULL GROUP BY name_key)"
        )
    )
    op.create_index(
        "uq_organisation_name_key_idless",
        "organisation",
        ["name_key"],
        unique=True,
        sqlite_where=sa.text(IDLESS),
        postgresql_where=sa.text(IDLESS),
    )


def downgrade() -> None:
    op.drop_index("uq_organisation_name_key_idless", table_name="organisation")
