"""project text vectors

Revision ID: 0008
Revises: 0007

Each project's text (title, topics, summary) embedded per model, so the service can say which past
project an idea resembles and a ranker can learn from it. Filled by ``index build``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_embedding",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("project_id", "model_id"),
    )


def downgrade() -> None:
    op.drop_table("project_embedding")
