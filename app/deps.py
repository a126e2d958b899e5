"""Request-scoped dependencies shared by every domain: settings and the database session.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in the thread pool,
and a hop there and back costs more than these functions do. Nothing here waits on I/O except
closing a session that still holds a transaction, which goes to the thread pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.config import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One session per request; services commit, anything left uncommitted is rolled back.

    Making a session opens no connection, so it is made on the event loop; closing one that is
    still in a transaction rolls back over the network, so that happens off the loop.
    """
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Session, Depends(get_db)]
