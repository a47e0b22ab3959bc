"""accounts, ownership, claims, API tokens, abuse reports and the audit log

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("verified_at", sa.DateTime(), nullable=True),
        sa.Column("consent_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    # plain ADD COLUMNs: SQLite would otherwise rebuild the table, which its foreign keys forbid
    op.add_column("organisation", sa.Column("owner_id", sa.Integer(), nullable=True))
    op.add_column("organisation", sa.Column("contact_name", sa.String(200), nullable=True))
    op.add_column("organisation", sa.Column("contact_email", sa.String(320), nullable=True))
    op.add_column("organisation", sa.Column("hidden", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_organisation_owner_id", "organisation", ["owner_id"])
    if op.get_bind().dialect.name != "sqlite":
        op.create_foreign_key("fk_organisation_owner", "organisation", "account", ["owner_id"], ["id"],
                              ondelete="SET NULL")
    op.create_table(
        "claim",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("organisation_id", sa.Integer(), sa.ForeignKey("organisation.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "abuse_report",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("organisation_id", sa.Integer(), sa.ForeignKey("organisation.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False, index=True),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey("account.id", ondelete="SET NULL"), nullable=True),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_log", "abuse_report", "api_token", "claim"):
        op.drop_table(table)
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_organisation_owner", "organisation", type_="foreignkey")
    op.drop_index("ix_organisation_owner_id", "organisation")
    with op.batch_alter_table("organisation") as batch:
        for column in ("hidden", "contact_email", "contact_name", "owner_id"):
            batch.drop_column(column)
    op.drop_table("account")
