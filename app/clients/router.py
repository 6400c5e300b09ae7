from fastapi import APIRouter, Request, Response, status

from app.clients import service
from app.clients.deps import AdminDep, ClientDep
from app.clients.schemas import ClientCreate, ClientCreated, ClientRead, KeyCreated, KeyRead
from app.core.db import RowId, SessionDep
from app.core.errors import problem_responses
from app.core.http_caching import TAGGED_CREATED, TAGGED_READ, Route, current_etag
from app.core.links import CREATED_WITH_LOCATION, locate
from app.core.pagination import Page, PageDep

router = APIRouter(prefix="/clients", tags=["clients"], route_class=Route)


@router.post(
    "",
    operation_id="create_client",
    status_code=status.HTTP_201_CREATED,
    response_model=ClientCreated,
    responses={**TAGGED_CREATED, **problem_responses(400, 409, 422)},
    summary="Create an API client and its first key (the key is shown only here)",
)
async def create_client(
    session: SessionDep, admin: AdminDep, data: ClientCreate, request: Request, response: Response
) -> ClientCreated:
    client, secret = await service.create_client(session, data, admin)
    shown = ClientRead.model_validate(client)
    # Tagged as `GET` shows the client: the key is in this answer only, not in the representation.
    response.headers["ETag"] = current_etag(shown)
    locate(request, response, "get_client", client_id=client.id)
    return ClientCreated.model_validate({**shown.model_dump(), "key": secret})


@router.get(
    "",
    operation_id="list_clients",
    response_model=Page[ClientRead],
    responses=problem_responses(422),
    summary="List API clients and their keys (never the secrets)",
)
async def list_clients(session: SessionDep, _admin: AdminDep, page: PageDep) -> Page[ClientRead]:
    return (await service.list_clients(session, page)).page(ClientRead.model_validate)


@router.get(
    "/{client_id}",
    operation_id="get_client",
    response_model=ClientRead,
    responses={**TAGGED_READ, **problem_responses(404)},
    summary="Get an API client",
)
async def get_client(_admin: AdminDep, client: ClientDep) -> ClientRead:
    return ClientRead.model_validate(client)


@router.post(
    "/{client_id}/keys",
    operation_id="create_client_key",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses={**CREATED_WITH_LOCATION, **problem_responses(404)},
    summary="Add a key to a client (the key is shown only here)",
)
async def create_client_key(
    session: SessionDep, admin: AdminDep, client: ClientDep, request: Request, response: Response
) -> KeyCreated:
    key, secret = await service.add_key(session, client, admin)
    # The key's own path: the one that revokes it (DELETE); its secret is never shown again.
    locate(request, response, "revoke_client_key", client_id=client.id, key_id=key.id)
    return KeyCreated.model_validate({**KeyRead.model_validate(key).model_dump(), "key": secret})


@router.delete(
    "/{client_id}/keys/{key_id}",
    operation_id="revoke_client_key",
    response_model=KeyRead,
    responses=problem_responses(404),
    summary="Revoke a key; requests with it are refused from now on",
)
async def revoke_client_key(
    session: SessionDep, admin: AdminDep, client: ClientDep, key_id: RowId
) -> KeyRead:
    key = await service.revoke_key(session, client, key_id, admin)
    return KeyRead.model_validate(key)
