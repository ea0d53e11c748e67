"""The caller's own account and the organisations they belong to."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.security import principal, system_tx, user_scope
from fusion.auth.models import User
from fusion.errors import NotFound
from fusion.orgs import service as orgs
from schemas.auth import MeSchema

blp = Blueprint("me", __name__, url_prefix="/me", description="The caller.")


@blp.get("")
@blp.response(200, MeSchema)
@user_scope()
def me() -> dict[str, Any]:
    """Who you are and your role in each of your organisations."""
    user_id = principal().user_id
    with system_tx() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        return {"user": user, "orgs": orgs.memberships(session, user.id)}
