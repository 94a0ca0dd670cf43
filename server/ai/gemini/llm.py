"""Gemini chat through the `google-genai` SDK: streamed text and function calls."""

from __future__ import annotations

import itertools
import json
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pydantic
from google import genai
from google.genai import errors, types

from server.ai.base import LLMEvent, PromptMessage, ProviderError, TextDelta, ToolCall, ToolSpec

# Pinned rather than the SDK's default (`v1` in 3.x): function calling, system instructions
# and thought signatures are all served there, and the fake in the tests speaks it.
API_VERSION = "v1beta"
# Calls whose Gemini metadata is kept for the follow-up request; a turn needs only its own.
REMEMBERED_CALLS = 1024


@dataclass(frozen=True, slots=True)
class CallOrigin:
    """What Gemini attached to a function call and wants back when the call is replayed."""

    gemini_id: str | None  # Gemini's own id, echoed; ids we made up (`call_<n>`) stay local
    thought_signature: bytes | None  # Gemini 3 answers 400 to a replayed call without it


def to_gemini_contents(
    messages: Sequence[PromptMessage], origins: Mapping[str, CallOrigin] | None = None
) -> tuple[str | None, list[types.Content]]:
    """The system instruction and the conversation as Gemini `contents`.

    Gemini wants the turns to alternate and to open with a user turn: adjacent messages of one
    role share a turn (two questions in a row, several tool results), and model turns before the
    first user turn are left out (the greeting, or the oldest answer of a cut history window).
    """
    origins = origins or {}
    system: list[str] = []
    turns: list[tuple[str, list[types.Part]]] = []
    call_names: dict[str, str] = {}
    for message in messages:
        if message.role == "system":
            if message.content.strip():
                system.append(message.content)
            continue
        if message.role == "tool":
            role, parts = "user", [_function_response(message, call_names, origins)]
        else:
            role = "model" if message.role == "assistant" else "user"
            parts = [types.Part(text=message.content)] if message.content else []
            for call in message.tool_calls:
                call_names[call.id] = call.name
                parts.append(_function_call(call, origins.get(call.id)))
        if not parts:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(parts)
        else:
            turns.append((role, parts))
    while turns and turns[0][0] == "model":
        turns.pop(0)
    contents = [types.Content(role=role, parts=parts) for role, parts in turns]
    return ("\n\n".join(system) or None), contents


def to_gemini_tools(tools: Sequence[ToolSpec]) -> list[types.Tool]:
    if not tools:
        return []
    return [types.Tool(function_declarations=[_declaration(t) for t in tools])]


def _declaration(tool: ToolSpec) -> types.FunctionDeclaration:
    # `parameters` (Gemini's OpenAPI-style Schema) is understood by every Gemini model; a
    # schema using JSON Schema keywords it lacks goes through `parametersJsonSchema` instead.
    try:
        schema = types.Schema.model_validate(tool.parameters) if tool.parameters else None
    except pydantic.ValidationError:
        return types.FunctionDeclaration(
            name=tool.name, description=tool.description, parameters_json_schema=tool.parameters
        )
    return types.FunctionDeclaration(
        name=tool.name, description=tool.description, parameters=schema
    )


def _function_call(call: ToolCall, origin: CallOrigin | None) -> types.Part:
    return types.Part(
        function_call=types.FunctionCall(
            name=call.name,
            args=_json_object(call.arguments),
            id=origin.gemini_id if origin else None,
        ),
        thought_signature=origin.thought_signature if origin else None,
    )


def _function_response(
    message: PromptMessage, call_names: Mapping[str, str], origins: Mapping[str, CallOrigin]
) -> types.Part:
    call_id = message.tool_call_id or ""
    name = call_names.get(call_id)
    if name is None:
        raise ProviderError(f"gemini: tool result {call_id!r} answers no call in the prompt")
    try:
        result: Any = json.loads(message.content)
    except ValueError:
        result = message.content
    origin = origins.get(call_id)
    return types.Part(
        function_response=types.FunctionResponse(
            name=name, response={"result": result}, id=origin.gemini_id if origin else None
        )
    )


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Generation:
    """GEMINI_TEMPERATURE, GEMINI_TOP_P, GEMINI_TOP_K, GEMINI_MAX_OUTPUT_TOKENS (None: the
    model's own default)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None


class GeminiLLM:
    name = "gemini"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout: float = 30.0,
        generation: Generation | None = None,
    ) -> None:
        self.model = model
        self.generation = generation or Generation()
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._client: genai.Client | None = None
        self._session: aiohttp.ClientSession | None = None
        self._call_numbers = itertools.count(1)
        self._origins: OrderedDict[str, CallOrigin] = OrderedDict()

    def _sdk(self) -> genai.Client:
        """The SDK client, made on first use, inside the running event loop.

        It gets an aiohttp session of ours: the SDK's own subclasses `ClientSession`, which
        aiohttp deprecates with a warning at the first request.
        """
        if self._client is None:
            self._session = aiohttp.ClientSession(trust_env=True)  # proxies, as the SDK does
            self._client = genai.Client(
                vertexai=False,  # the Gemini API with a key, whatever GOOGLE_GENAI_USE_VERTEXAI
                api_key=self._api_key,
                http_options=types.HttpOptions(
                    base_url=self._base_url,
                    api_version=API_VERSION,
                    timeout=math.ceil(self._timeout * 1000),  # the SDK counts milliseconds
                    # Our own deadline (AI_TIMEOUT_SECONDS) bounds the whole turn; SDK retries
                    # would silently spend it. One attempt also turns off the SDK's implicit
                    # reconnect after a refused connection, which sleeps 1-10 s first.
                    retry_options=types.HttpRetryOptions(attempts=1),
                    aiohttp_client=self._session,
                ),
            )
        return self._client

    async def stream(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        system, contents = to_gemini_contents(messages, self._origins)
        config = types.GenerateContentConfig(
            system_instruction=system,
            tools=[*to_gemini_tools(tools)] or None,
            # we run the tools ourselves (server.conversation.turn), never the SDK
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            temperature=self.generation.temperature,
            top_p=self.generation.top_p,
            top_k=self.generation.top_k,
            max_output_tokens=self.generation.max_output_tokens,
        )
        finished = False
        try:
            chunks = await self._sdk().aio.models.generate_content_stream(
                model=self.model, contents=contents, config=config
            )
            async for chunk in chunks:
                feedback = chunk.prompt_feedback
                if feedback is not None and feedback.block_reason is not None:
                    raise ProviderError(f"gemini: prompt blocked ({feedback.block_reason})")
                if not chunk.candidates:
                    continue
                candidate = chunk.candidates[0]
                finished = finished or candidate.finish_reason is not None
                parts = candidate.content.parts if candidate.content else None
                for part in parts or ():
                    if part.thought:  # reasoning summaries are not part of the answer
                        continue
                    if part.text:
                        yield TextDelta(part.text)
                    if part.function_call is not None:
                        yield self._tool_call(part)
        except errors.APIError as exc:
            raise ProviderError(f"gemini: HTTP {exc.code} {exc.status}: {exc.message}") from exc
        except TimeoutError as exc:
            raise ProviderError(f"gemini: no answer within {self._timeout:g} s") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            # ValueError covers a malformed stream (bad JSON, a response the SDK can't parse)
            raise ProviderError(f"gemini: {type(exc).__name__}: {exc}") from exc
        if not finished:
            raise ProviderError("gemini: the stream ended without a finish reason")

    def _tool_call(self, part: types.Part) -> ToolCall:
        call = part.function_call
        assert call is not None
        if not call.name:
            raise ProviderError("gemini: function call without a name")
        call_id = call.id or f"call_{next(self._call_numbers)}"
        self._origins[call_id] = CallOrigin(call.id, part.thought_signature)
        while len(self._origins) > REMEMBERED_CALLS:
            self._origins.popitem(last=False)
        arguments = json.dumps(call.args or {}, ensure_ascii=False)
        return ToolCall(id=call_id, name=call.name, arguments=arguments)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client.close()
        if self._session is not None:
            await self._session.close()
