"""Organisations, members, invitations and API keys."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from fusion.auth.models import Role
from fusion.orgs.models import InvitationStatus
from schemas.common import Moment, PageQuerySchema, StrictSchema, Text, Timestamps, page_of

NAME = validate.Length(min=1, max=200)


OWNER_MFA = {
    "description": "Owners must use multi-factor sign-in: while on, an owner without it gets "
    "403 on every endpoint of the org until they enrol."
}


class OrgSchema(Timestamps):
    name = Text(required=True)
    slug = Text(required=True)
    require_owner_mfa = fields.Boolean(required=True, metadata=OWNER_MFA)


class OrgCreateSchema(StrictSchema):
    name = Text(required=True, validate=NAME)


class OrgUpdateSchema(StrictSchema):
    name = Text(validate=NAME)
    require_owner_mfa = fields.Boolean(metadata=OWNER_MFA)


class MemberSchema(Timestamps):
    org_id = fields.UUID(required=True)
    user_id = fields.UUID(required=True)
    role = fields.Enum(Role, by_value=True, required=True)


MemberPageSchema = page_of(MemberSchema, "MemberPageSchema")


class MemberQuerySchema(PageQuerySchema):
    role = fields.Enum(Role, by_value=True, load_default=None)


class InvitationSchema(Timestamps):
    org_id = fields.UUID(required=True)
    email = Text(required=True)
    role = fields.Enum(Role, by_value=True, required=True)
    status = fields.Enum(InvitationStatus, by_value=True, required=True)
    invited_by = fields.UUID(allow_none=True, required=True)
    expires_at = fields.AwareDateTime(required=True)
    answered_by = fields.UUID(allow_none=True, required=True)
    answered_at = fields.AwareDateTime(allow_none=True, required=True)


InvitationPageSchema = page_of(InvitationSchema, "InvitationPageSchema")


class InvitationQuerySchema(PageQuerySchema):
    status = fields.Enum(InvitationStatus, by_value=True, load_default=None)


class InvitationCreateSchema(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    role = fields.Enum(Role, by_value=True, required=True)


class MemberUpdateSchema(StrictSchema):
    role = fields.Enum(Role, by_value=True, required=True)


class KeyCreatorSchema(Schema):
    user_id = fields.UUID(required=True)
    email = Text(required=True)


class ApiKeySchema(Timestamps):
    name = Text(required=True)
    public_id = Text(required=True)
    role = fields.Enum(
        Role,
        by_value=True,
        required=True,
        metadata={"description": "The most it acts with: never above its creator's role now."},
    )
    created_by = fields.Nested(
        KeyCreatorSchema,
        allow_none=True,
        required=True,
        metadata={"description": "The person the key acts for (null once their account is gone)."},
    )
    last_used_at = fields.AwareDateTime(allow_none=True, required=True)
    expires_at = fields.AwareDateTime(allow_none=True, required=True)
    revoked_at = fields.AwareDateTime(allow_none=True, required=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    key = Text(
        required=True, metadata={"description": "The key itself: shown now and never again."}
    )


ApiKeyPageSchema = page_of(ApiKeySchema, "ApiKeyPageSchema")


class RevokedKeysSchema(Schema):
    revoked = fields.List(fields.Nested(ApiKeySchema), required=True)


class ApiKeyCreateSchema(StrictSchema):
    name = Text(required=True, validate=NAME)
    role = fields.Enum(Role, by_value=True, required=True)
    expires_at = Moment(load_default=None)


class ApiKeyQuerySchema(PageQuerySchema):
    pass


class OkSchema(Schema):
    status = Text(required=True)
