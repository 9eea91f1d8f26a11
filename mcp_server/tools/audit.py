"""Audit tool: list_audit_log."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.reads import pure_read
from mcp_server.registry import NextToken, PageSize, tool
from togai_engine.audit.schemas import AuditRecord
from togai_engine.audit.service import list_audit
from togai_engine.common.schemas import Page


@tool("list_audit_log", scope="audit:read", read_only=True, idempotent=True, title="List audit log")
async def list_audit_log(
    ctx: Context,
    tool: Annotated[str | None, Field(description="only calls of this tool (or CLI command, e.g. 'plans apply'), "
                                                    "e.g. grant_credit")] = None,
    actor: Annotated[str | None, Field(description="'local' (stdio), 'key:<key id>' (HTTP) or 'cli' (the "
                                                     "togai-engine command)")] = None,
    entityId: Annotated[str | None, Field(description="only calls that created or changed this id")] = None,
    pageSize: PageSize = 20,
    nextToken: NextToken = None,
) -> Page[AuditRecord]:
    """List the audit log, newest first: every mutating tool call and CLI write with when, who (API key,
    local or cli), the arguments (secrets redacted) and the ids it created or changed."""
    async with pure_read(ctx) as u:
        return await list_audit(u.session, tool=tool, actor=actor, entity_id=entityId, page_size=pageSize,
                                next_token=nextToken)
