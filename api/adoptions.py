"""Adopting what a store already sells: a preview read from the platform, then a confirm that
links (and, when asked, creates) as a job with a result per listing."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from api.pagination import page
from api.security import access, org_scope, tx
from fusion.audit.service import record
from fusion.auth.models import Role
from fusion.jobs.models import Job
from fusion.onboarding import adoption
from fusion.onboarding.models import Adoption, AdoptionListing
from schemas.adoptions import (
    AdoptionConfirmSchema,
    AdoptionListingPageSchema,
    AdoptionListingQuerySchema,
    AdoptionSchema,
)
from schemas.job_views import JobSchema

blp = Blueprint("adoptions", __name__, url_prefix="/orgs", description="Adoptions.")


@blp.post("/<uuid:org_id>/stores/<uuid:store_id>/adoptions")
@blp.response(202, AdoptionSchema)
@org_scope(Role.OPERATOR)
def start(org_id: uuid.UUID, store_id: uuid.UUID) -> Adoption:
    """Read every listing the store has on its platform (a job, ``read_job_id``) and match
    each to the catalog: the preview (``status`` becomes ``previewed``). Nothing is applied
    until it is confirmed. 409 while another adoption of the store is under way."""
    started = adoption.start(tx(), org_id=org_id, store_id=store_id, created_by=access().user_id)
    record(tx(), org_id=org_id, actor=access().principal, action="adoption.start",
           resource_type="store_adoption", resource_id=started.id,
           after={"store_id": store_id, "read_job_id": started.read_job_id})  # fmt: skip
    return started


@blp.get("/<uuid:org_id>/stores/<uuid:store_id>/adoptions/<uuid:adoption_id>")
@blp.response(200, AdoptionSchema)
@org_scope(Role.VIEWER)
def get_adoption(org_id: uuid.UUID, store_id: uuid.UUID, adoption_id: uuid.UUID) -> Adoption:
    """One adoption: how far reading is, and the plan's counts once previewed."""
    return adoption.get_adoption(tx(), store_id, adoption_id)


@blp.get("/<uuid:org_id>/stores/<uuid:store_id>/adoptions/<uuid:adoption_id>/listings")
@blp.arguments(AdoptionListingQuerySchema, location="query")
@blp.response(200, AdoptionListingPageSchema)
@org_scope(Role.VIEWER)
def list_listings(
    query: dict[str, Any], org_id: uuid.UUID, store_id: uuid.UUID, adoption_id: uuid.UUID
) -> dict[str, Any]:
    """The store's listings as read, each with what adoption does with it (``link``,
    ``create``, ``conflict``, ``adopted``) and its conflicts, filtered by action."""
    adoption.get_adoption(tx(), store_id, adoption_id)
    return page(
        tx(),
        AdoptionListing,
        limit=query["limit"],
        cursor=query["cursor"],
        filters={"adoption_id": adoption_id, "action": query["action"]},
    )


@blp.post("/<uuid:org_id>/stores/<uuid:store_id>/adoptions/<uuid:adoption_id>/confirm")
@blp.arguments(AdoptionConfirmSchema)
@blp.response(202, JobSchema)
@org_scope(Role.OPERATOR)
def confirm(
    body: dict[str, Any], org_id: uuid.UUID, store_id: uuid.UUID, adoption_id: uuid.UUID
) -> Job:
    """Apply the preview as a job with a result per listing (``GET
    /orgs/{org}/jobs/{id}/items``). 409 while it is still reading or once it was confirmed."""
    job = adoption.confirm(tx(), store_id=store_id, adoption_id=adoption_id,
                           created_by=access().user_id, **body)  # fmt: skip
    record(tx(), org_id=org_id, actor=access().principal, action="adoption.confirm",
           resource_type="store_adoption", resource_id=adoption_id,
           after={"job_id": job.id, **body})  # fmt: skip
    return job
