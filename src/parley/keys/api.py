"""Routes: /v1/api-keys (in the organisation of the request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from parley.http.deps import App, DbSession, OrgFromHeader
from parley.http.errors import error_responses
from parley.keys.models import ApiKey
from parley.keys.schemas import CreatedKeyOut, CreateKeyRequest, KeyOut
from parley.kit.pagination import Page, PageParams, page_params
from parley.orgs.roles import Scope

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        org_id=key.org_id,
        name=key.name,
        prefix=key.prefix,
        scopes=[Scope(s) for s in key.scopes],
        created_by=key.created_by,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        expires_at=key.expires_at,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        revoked_at=key.revoked_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 422),
    summary="Create an API key (the secret is in `key`, shown once)",
)
async def create_key(
    body: CreateKeyRequest, org: OrgFromHeader, app: App, session: DbSession
) -> CreatedKeyOut:
    created = await app.keys.create(
        session,
        org,
        name=body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
        rpm_limit=body.rpm_limit,
        tpm_limit=body.tpm_limit,
    )
    return CreatedKeyOut(**key_out(created.key).model_dump(), key=created.secret)


@router.get("", responses=error_responses(401, 403, 404, 422), summary="API keys")
async def list_keys(
    org: OrgFromHeader,
    app: App,
    session: DbSession,
    paging: Annotated[PageParams, Depends(page_params)],
    include_revoked: Annotated[bool, Query(description="Also list revoked keys.")] = False,
) -> Page[KeyOut]:
    rows, has_more = await app.keys.list(
        session, org, include_revoked=include_revoked, limit=paging.limit, after=paging.after
    )
    return Page.build(rows, has_more, key_out)


@router.get("/{key_id}", responses=error_responses(401, 403, 404), summary="One API key")
async def get_key(key_id: str, org: OrgFromHeader, app: App, session: DbSession) -> KeyOut:
    return key_out(await app.keys.get(session, org, key_id))


@router.delete(
    "/{key_id}",
    responses=error_responses(401, 403, 404, 409),
    summary="Revoke an API key (it stops working at once, everywhere)",
)
async def revoke_key(key_id: str, org: OrgFromHeader, app: App, session: DbSession) -> KeyOut:
    return key_out(await app.keys.revoke(session, org, key_id))
