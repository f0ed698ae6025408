"""applications, grants and authorization codes (issue 13)

- applications: OAuth clients people register (confidential with a secret digest, or public).
- grants: what a person approved (person x client x scopes), with the generation its signed
  access tokens carry; one per (person, device) and per (person, application). AUTOINCREMENT
  on SQLite: a revoked grant's id, which its tokens carry, never comes back.
- authorization_codes: codes by SHA-256 digest, bound to grant, redirect URI and PKCE challenge.
- devices.redirect_uris: the redirect URIs a device's owner adds (ADD COLUMN on SQLite: devices
  is referenced by other tables' foreign keys, so it is never rebuilt).
- tokens.grant_id: the grant of a refresh token. The refresh tokens made before this revision
  belonged to no grant (only tests made them): they are deleted. tokens is referenced by no
  other table, so SQLite may rebuild it to add the foreign key.

Revision ID: d3e4f5a6b7c8
Revises: c2d3e4f5a6b7
Create Date: 2026-11-26 04:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

import bioweb.models


revision = "d3e4f5a6b7c8"
down_revision = "c2d3e4f5a6b7"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'applications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('homepage_url', sa.String(length=500), nullable=False),
        sa.Column('client_id', sa.String(length=32), nullable=False),
        sa.Column('client_type', sa.String(length=12), nullable=False),
        sa.Column('client_secret_digest', sa.String(length=64), nullable=False),
        sa.Column('client_secret_created_time', bioweb.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('redirect_uris', sa.Text(), nullable=False),
        sa.Column('created_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('modified_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_applications_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_applications')),
        sa.UniqueConstraint('client_id', name=op.f('uq_applications_client_id')),
    )
    op.create_index('ix_applications_user_id_id', 'applications', ['user_id', 'id'])
    op.create_table(
        'grants',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=True),
        sa.Column('application_id', sa.Integer(), nullable=True),
        sa.Column('scope', sa.String(length=255), nullable=False),
        sa.Column('generation', sa.Integer(), server_default='1', nullable=False),
        sa.Column('created_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('modified_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_used_time', bioweb.models.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint('(device_id IS NULL) <> (application_id IS NULL)', name=op.f('ck_grants_one_client')),
        sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_grants_application_id_applications')),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_grants_device_id_devices')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_grants_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_grants')),
        sqlite_autoincrement=True,  # ids in signed tokens are never reused
    )
    op.create_index('ix_grants_user_id_id', 'grants', ['user_id', 'id'])
    op.create_index('ix_grants_device_id', 'grants', ['device_id'])
    op.create_index('ix_grants_application_id', 'grants', ['application_id'])
    op.create_index(
        'uq_grants_user_device', 'grants', ['user_id', 'device_id'], unique=True,
        sqlite_where=sa.text('device_id IS NOT NULL'), postgresql_where=sa.text('device_id IS NOT NULL'),
    )
    op.create_index(
        'uq_grants_user_application', 'grants', ['user_id', 'application_id'], unique=True,
        sqlite_where=sa.text('application_id IS NOT NULL'),
        postgresql_where=sa.text('application_id IS NOT NULL'),
    )
    op.create_table(
        'authorization_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('grant_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('scope', sa.String(length=255), nullable=False),
        sa.Column('redirect_uri', sa.String(length=1000), nullable=False),
        sa.Column('redirect_uri_given', sa.Boolean(), nullable=False),
        sa.Column('code_challenge', sa.String(length=128), nullable=True),
        sa.Column('created_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_time', bioweb.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('used_time', bioweb.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('family', sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(['grant_id'], ['grants.id'], name=op.f('fk_authorization_codes_grant_id_grants')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_authorization_codes_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_authorization_codes')),
        sa.UniqueConstraint('digest', name=op.f('uq_authorization_codes_digest')),
    )
    op.create_index(op.f('ix_authorization_codes_grant_id'), 'authorization_codes', ['grant_id'])
    op.create_index(op.f('ix_authorization_codes_user_id'), 'authorization_codes', ['user_id'])
    op.create_index(op.f('ix_authorization_codes_expires_time'), 'authorization_codes', ['expires_time'])
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('redirect_uris', sa.Text(), server_default='', nullable=False))
    op.execute("DELETE FROM tokens WHERE kind = 'refresh'")
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('grant_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_tokens_grant_id'), ['grant_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_tokens_grant_id_grants'), 'grants', ['grant_id'], ['id'])


def downgrade():
    op.execute("DELETE FROM tokens WHERE kind = 'refresh'")
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_tokens_grant_id_grants'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_tokens_grant_id'))
        batch_op.drop_column('grant_id')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('redirect_uris')
    op.drop_table('authorization_codes')
    op.drop_table('grants')
    op.drop_table('applications')
