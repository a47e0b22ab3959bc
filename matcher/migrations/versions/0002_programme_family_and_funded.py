"""programme family on projects, funded on participations (the newcomer rule per programme)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from matcher.vocab import programme_family

    with op.batch_alter_table("project") as batch:
        batch.add_column(sa.Column("family", sa.String(30), nullable=False, server_default="other"))
        batch.create_index("ix_project_family", ["family"])
    with op.batch_alter_table("participation") as batch:
        batch.add_column(sa.Column("funded", sa.Boolean(), nullable=False, server_default=sa.true()))
    conn = op.get_bind()
    project = sa.table("project", sa.column("programme", sa.String), sa.column("source", sa.String),
                       sa.column("family", sa.String))
    for programme, source in conn.execute(sa.select(project.c.programme, project.c.source).distinct()).all():
        conn.execute(project.update().where(project.c.programme.is_not_distinct_from(programme),
                                            project.c.source.is_not_distinct_from(source))
                     .values(family=programme_family(programme, source)))
    participation = sa.table("participation", sa.column("role", sa.String), sa.column("funded", sa.Boolean))
    conn.execute(participation.update().where(participation.c.role == "other").values(funded=False))


def downgrade() -> None:
    with op.batch_alter_table("participation") as batch:
        batch.drop_column("funded")
    with op.batch_alter_table("project") as batch:
        batch.drop_index("ix_project_family")
        batch.drop_column("family")
