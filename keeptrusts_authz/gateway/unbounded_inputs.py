"""Inputs a request body only points at: what breaks the "prompt tokens <= body bytes" bound.

A file or PDF part (its pages become text and images upstream; base64 compresses nothing but a
file id or URL is a few bytes for any number of tokens), a document by URL, a stored prompt
(`prompt.id`), a stored input item (`item_reference`, or an input item type not known here), a
server-side tool (web search, file search, code execution: the provider feeds
their results back into the prompt) or an MCP server (the same, from a remote server). The
gateway cannot bound what these cost before the provider bills them, so each consumer group
chooses (`unbounded_inputs`): refuse the request (400 naming the feature) or reserve a fixed
allowance per such input (`unbounded_allowance_tokens`).

Only the parts of the body that hold conversation content are walked (messages, input, system),
so a tool's JSON schema (`"type": "string"`) is never mistaken for a content part.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

# feature -> how the refusal names it
FEATURES: Final = {
    "file_input": "a file or PDF input part",
    "document_url": "a document by URL",
    "stored_prompt": "a stored prompt (prompt.id)",
    "server_tool": "a server-side tool",
    "mcp_server": "an MCP server",
    "stored_item": "a stored input item by reference (item_reference)",
    "unknown_input_item": "an input item of a type the gateway does not know",
    # Added by gateway/estimation when neither server_history_tokens nor the model's context
    # window bounds a chained Responses request (previous_response_id / conversation).
    "server_history": "server-side history no context window bounds",
}

# OpenAI tool types the client executes (their results come back in a later request's body).
_OPENAI_CLIENT_TOOLS: Final = frozenset(
    {"function", "custom", "local_shell", "shell", "apply_patch", "computer_use_preview"}
)
# Anthropic-defined tools the client executes (the type carries a version suffix).
_ANTHROPIC_CLIENT_TOOL_PREFIXES: Final = ("bash_", "text_editor_", "computer_", "memory_")
# Responses input item types whose content is in the body itself (a message, a tool call or
# its output the client sends back, reasoning/compaction it carries encrypted). An
# `item_reference` pulls a stored item of any size by its id; any other type may be a reference
# too, so it is counted as one (review #6).
_RESPONSES_BODY_ITEMS: Final = frozenset(
    {
        "message",
        "reasoning",
        "compaction",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "computer_call",
        "computer_call_output",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_list_tools",
        "mcp_call",
        "mcp_approval_request",
        "mcp_approval_response",
    }
)
# Anthropic document sources whose content is in the body itself.
_INLINE_DOCUMENT_SOURCES: Final = frozenset({"text", "content"})


def _walk_parts(value: Any, found: Counter[str]) -> None:
    if isinstance(value, list):
        for v in value:
            _walk_parts(v, found)
        return
    if not isinstance(value, dict):
        return
    kind = value.get("type")
    if kind in ("file", "input_file"):
        # OpenAI chat `file` ({file: {file_id | file_data}}), Responses `input_file`
        # (file_id | file_data | file_url).
        inner = value.get("file") if isinstance(value.get("file"), dict) else value
        if isinstance(inner, dict) and inner.get("file_url"):
            found["document_url"] += 1
        else:
            found["file_input"] += 1
    elif kind == "document":
        source = value.get("source")
        source_type = source.get("type") if isinstance(source, dict) else None
        if source_type == "url":
            found["document_url"] += 1
        elif source_type not in _INLINE_DOCUMENT_SOURCES:
            found["file_input"] += 1  # base64 PDF, file id, or a source we do not know
    for v in value.values():
        if isinstance(v, list | dict):
            _walk_parts(v, found)


def _responses_items(items: Any, found: Counter[str]) -> None:
    """The top-level Responses `input` items: references and unknown types."""
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind is None and "role" in item:
            continue  # an easy input message
        if kind == "item_reference":
            found["stored_item"] += 1
        elif kind not in _RESPONSES_BODY_ITEMS:
            found["unknown_input_item"] += 1


def _openai_tools(tools: Any, found: Counter[str]) -> None:
    if not isinstance(tools, list):
        return
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "mcp":
            found["mcp_server"] += 1
        elif kind not in _OPENAI_CLIENT_TOOLS:
            found["server_tool"] += 1  # web_search, file_search, code_interpreter, ...


def _anthropic_tools(tools: Any, found: Counter[str]) -> None:
    if not isinstance(tools, list):
        return
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind is None or kind == "custom":
            continue
        if isinstance(kind, str) and kind.startswith(_ANTHROPIC_CLIENT_TOOL_PREFIXES):
            continue
        if kind == "mcp_toolset":
            found["mcp_server"] += 1
        else:
            found["server_tool"] += 1  # web_search_*, web_fetch_*, code_execution_*, ...


def unbounded_inputs(api: str, body: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """(feature, occurrences) for every unbounded input the request uses, sorted by feature."""
    found: Counter[str] = Counter()
    if api == "openai_embeddings":
        return ()
    for key in ("messages", "input", "system"):
        _walk_parts(body.get(key), found)
    if api == "anthropic_messages":
        _anthropic_tools(body.get("tools"), found)
        servers = body.get("mcp_servers")
        if isinstance(servers, list) and servers:
            found["mcp_server"] += len(servers)
    else:
        _openai_tools(body.get("tools"), found)
        if body.get("web_search_options") is not None:
            found["server_tool"] += 1  # chat completions' built-in web search
        prompt = body.get("prompt")
        if api == "openai_responses" and isinstance(prompt, dict) and prompt.get("id"):
            found["stored_prompt"] += 1
        if api == "openai_responses":
            _responses_items(body.get("input"), found)
    return tuple(sorted(found.items()))


def describe(features: tuple[tuple[str, int], ...]) -> str:
    """`a server-side tool (server_tool), an MCP server (mcp_server)` for a refusal message."""
    return ", ".join(f"{FEATURES[name]} ({name})" for name, _ in features)
