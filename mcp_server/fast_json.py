"""Reading JSON-RPC messages from stdio: faster, bounded, and every line answered.

Faster: the SDK's stdio transport parses each message with `jsonrpc_message_adapter.validate_json(text)`.
For a request carrying 1000 events (~200 KB) that is ~8 ms of server CPU; orjson followed by
`validate_python` on the same adapter gives the same message in a fraction of that (the arguments
are plain JSON values either way). `install()` swaps the module-level adapter the transport reads
for one that does that, and hands what orjson cannot read (nesting past 1024 levels; lone surrogates;
malformed text) to the SDK's own `validate_json`, so a message both read gives the same result. A
message with a number of 16+ digits (19+ orjson would make a float) or an exponent goes to the json
module instead (see "Exact" below).

Bounded and answered: the SDK drops a line it cannot read (it logs it at DEBUG), so a client waits
for an answer that never comes. Here such a line becomes an `UnreadableMessage`, which
`AnsweringReader` turns into a JSON-RPC error carrying the request's id when one can be found
(id null otherwise, as JSON-RPC 2.0 says): a line longer than the request limit is refused before it
is parsed, text that is not JSON gets -32700, JSON that is not a JSON-RPC message or is nested too
deeply to read gets -32600. JSON the SDK's parser refuses but the json module reads (a lone UTF-16
surrogate in a string, an object nested past pydantic's 200 levels) is read by the json module, so
the server can name the argument at fault (see mcp_server/argument_checks.py) instead of dropping the call.

Exact: a JSON number a float does not hold (1e-400 underflows to 0.0, 10.000000000000000001 rounds to 10.0)
must not reach a tool as that float, an amount or a quantity silently changed. A message that may hold one
(`may_hold_inexact_number`: a number with an exponent or 16+ digits) is read by the json module with
`loads_checked`, which makes such a number an InexactNumber; the argument checks refuse it by its path.
The streamable HTTP transport parses with pydantic-core, answers what it cannot read with a 400, and
bounds the body itself; it does not read this adapter, but `install_http` has it read a body that may hold
such a number with `loads_checked` too.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from types import TracebackType
from typing import Any, Self

import anyio
import mcp_types
import orjson
import pydantic_core
from mcp.server import streamable_http
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from mcp_server.argument_checks import MAX_DEPTH
from togai_engine.common.json_text import loads_checked, may_hold_inexact_number
from togai_engine.common.messages import encodable

log = logging.getLogger("togai_engine.stdio")
DEFAULT_MAX_MESSAGE_CHARS = 4 * 1024 * 1024
ID_SCAN_CHARS = 64 * 1024  # an id is near the start of a message; a refused message is not read to its end


class UnreadableMessage(Exception):
    """A stdio line that is not a JSON-RPC message the server can take; answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, request_id: str | int | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


class _JsonFirstAdapter:
    """Quacks like the SDK's TypeAdapter for JSON-RPC messages; only validate_json differs."""

    def __init__(self, adapter: Any, max_chars: int = DEFAULT_MAX_MESSAGE_CHARS) -> None:
        self._adapter = adapter
        self.max_chars = max_chars

    def validate_json(self, data: str | bytes, **options: Any) -> Any:
        try:
            return self._read(data, options)
        except UnreadableMessage:
            raise
        except Exception:
            # the SDK's reader passes any other exception to the server, which drops the line: the client would
            # wait forever for an answer, so the line is answered with an internal error the log can be found by
            ref = uuid.uuid4().hex[:12]
            log.exception("could not read a stdio message (ref %s)", ref)
            raise UnreadableMessage(
                INTERNAL_ERROR, f"the server could not read this message because of an internal error (ref {ref}); "
                "nothing was changed. The server log has the details under that ref.", find_id(data)) from None

    def _read(self, data: str | bytes, options: dict[str, Any]) -> Any:
        if len(data) > self.max_chars:
            raise UnreadableMessage(
                INVALID_REQUEST, f"the message is {len(data)} characters long, over the limit of {self.max_chars} "
                "(TOGAI_HTTP_MAX_REQUEST_BYTES); send less in one call, e.g. fewer events per batch",
                find_id(data))
        if may_hold_inexact_number(data):
            # a number a float may not hold (1e-400 would be 0.0; 19+ digits orjson would make a float): read by
            # the json module, such a number an InexactNumber that the argument checks refuse by name
            return self._read_with_the_json_module(data, options)
        try:
            return self._adapter.validate_python(orjson.loads(data), **options)
        except (orjson.JSONDecodeError, ValidationError):
            pass
        try:
            return self._adapter.validate_json(data, **options)
        except ValidationError:
            return self._read_with_the_json_module(data, options)

    def _read_with_the_json_module(self, data: str | bytes, options: dict[str, Any]) -> Any:
        try:
            value = loads_checked(data)
        except RecursionError:
            raise UnreadableMessage(
                INVALID_REQUEST, "the message is nested too deeply to read; a tool's arguments may be nested at "
                f"most {MAX_DEPTH} levels deep", find_id(data)) from None
        except ValueError as exc:
            reason = str(exc).split(":", 1)[0][:100]
            raise UnreadableMessage(PARSE_ERROR, f"Parse error: the message is not JSON ({reason})",
                                    find_id(data)) from None
        try:
            return self._adapter.validate_python(value, **options)
        except ValidationError:
            raise UnreadableMessage(
                INVALID_REQUEST, 'Invalid Request: not a JSON-RPC 2.0 message; a request is {"jsonrpc": "2.0", '
                '"id": <number or string>, "method": <string>, "params": <object>}', _id_of(value)) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


def _id_of(value: object) -> str | int | None:
    request_id = value.get("id") if isinstance(value, dict) else None
    return request_id if isinstance(request_id, (str, int)) and not isinstance(request_id, bool) else None


# The tokens of JSON text: strings, punctuation, and anything else up to the next delimiter.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def find_id(data: str | bytes) -> str | int | None:
    """The top-level "id" of a message that cannot be parsed whole, read from its first ID_SCAN_CHARS
    characters without parsing what is nested; None when not found there."""
    text = data[:ID_SCAN_CHARS]
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth, expecting_id, previous = 0, False, ""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "{[":
            depth += 1
        elif token in "}]":
            depth -= 1
        elif expecting_id:
            return _literal_id(token)
        elif token == ":" and depth == 1 and previous == '"id"':
            expecting_id = True
        previous = token
    return None


def _literal_id(token: str) -> str | int | None:
    try:
        value = json.loads(token)
    except ValueError:
        return None
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


class AnsweringReader:
    """The stdio read stream, minus unreadable lines: each is answered with a JSON-RPC error on the
    write stream instead of reaching the server (which would drop it)."""

    def __init__(self, inner: Any, write_stream: Any) -> None:
        self._inner = inner
        self._write = write_stream

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        while True:
            item = await self._inner.receive()
            if not isinstance(item, UnreadableMessage):
                return item
            log.warning("refused a stdio message (id %r): %s", item.request_id, item.message)
            error = JSONRPCError(jsonrpc="2.0", id=item.request_id,
                                 error=ErrorData(code=item.code, message=item.message))
            await self._write.send(SessionMessage(error))

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class EncodableWriter:
    """The stdio write stream, making sure each message can be written: the SDK's writer task serializes
    every message to JSON and dies on one it cannot (a lone surrogate that found its way into an answer),
    taking the connection with it; such a message goes out with the surrogate written as its escape."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage) -> None:
        try:
            item.message.model_dump_json(by_alias=True, exclude_unset=True)
        except PydanticSerializationError:
            data = _escaped(item.message.model_dump(by_alias=True, exclude_unset=True))
            log.warning("escaped text that is not Unicode in an outgoing %s", type(item.message).__name__)
            item = SessionMessage(type(item.message).model_validate(data), metadata=item.metadata)
        await self._inner.send(item)

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def install(max_chars: int = DEFAULT_MAX_MESSAGE_CHARS) -> None:
    """Idempotent; called once when the stdio server starts (run_stdio)."""
    current = mcp_types.jsonrpc_message_adapter
    if isinstance(current, _JsonFirstAdapter):
        current.max_chars = max_chars
    else:
        mcp_types.jsonrpc_message_adapter = _JsonFirstAdapter(current, max_chars)  # type: ignore[assignment]


async def run_stdio(server: Any, max_chars: int = DEFAULT_MAX_MESSAGE_CHARS) -> None:
    """MCPServer.run_stdio_async, with messages read as above and unreadable ones answered."""
    install(max_chars)
    lowlevel = server._lowlevel_server
    async with stdio_server() as (read_stream, write_stream):
        writer = EncodableWriter(write_stream)
        await lowlevel.run(AnsweringReader(read_stream, writer), writer, lowlevel.create_initialization_options())


class _ExactBodies:
    """pydantic_core as the SDK's streamable HTTP transport uses it (`from_json(body)`), except that a body that may
    hold a number a float does not hold is read by `loads_checked` (json.loads' errors become the ValueError
    pydantic_core raises, which the transport answers as a parse error)."""

    def from_json(self, data: str | bytes | bytearray, **options: Any) -> Any:
        if may_hold_inexact_number(data):
            try:
                return loads_checked(data)
            except RecursionError:
                raise ValueError("the message is nested too deeply to read") from None
        return pydantic_core.from_json(data, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(pydantic_core, name)


def install_http() -> None:
    """Idempotent; called once when the HTTP server starts (serve_http)."""
    if not isinstance(streamable_http.pydantic_core, _ExactBodies):
        streamable_http.pydantic_core = _ExactBodies()  # type: ignore[assignment]
