"""Find the text worth classifying in an OpenAI request body.

Why so defensive: the body is whatever a client sent. Routing must never fail
because a message is a number or ``content`` is null; the worst case is "".
Why this order: the last user message says what is wanted now, so it comes
first (the classifier weighs a prompt's opening words); the system message
follows, cut short, because it often names the domain ("you are a Python
expert") but is mostly boilerplate. A user turn that hands back tool results (with
Anthropic's API, a `tool_result` part, often beside an agent's injected reminder text)
is the agent's loop going on, not a new request: classified, it would move a tool loop
to another model between turns, losing its prompt cache and its thinking's signatures.
"""

SYSTEM_CHARS = 500
MAX_ITEMS = 1000
"""The most items of one list read for the text: a prompt's first parts, a chat's first
and last messages. A body may hold millions (16 MB of token ids fits the body limit),
and the classifier weighs a prompt's opening words."""
_SYSTEM_ROLES = ("system", "developer")


def _part_text(part: object) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type") in ("text", "input_text", None):
        text = part.get("text")
        return text if isinstance(text, str) else ""
    return ""


def content_text(content: object) -> str:
    """A message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(t for t in map(_part_text, content[:MAX_ITEMS]) if t)
    return ""


def _hands_back_tools(content: object) -> bool:
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "tool_result" for part in content
    )


def _messages_text(messages: list[object], beside: list[str]) -> str:
    if len(messages) > MAX_ITEMS:  # the system prompts first, the last turns
        messages = [*messages[:16], *messages[16 - MAX_ITEMS :]]
    system = list(beside)
    last_user = ""
    last_any = ""
    for message in messages:
        if not isinstance(message, dict):
            continue
        text = content_text(message.get("content"))
        if not text:
            continue
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            system.append(text)
        elif role == "user" and not _hands_back_tools(message.get("content")):
            last_user = text
        last_any = text
    return _in_context(last_user or last_any, system)


def _in_context(request: str, system: list[str]) -> str:
    if not system:
        return request
    context = "\n".join(system)[:SYSTEM_CHARS]
    return f"{request}\n\n{context}" if request else context


def _strings(value: object, system: list[str]) -> str:
    if isinstance(value, str):
        return _in_context(value, system)
    if isinstance(value, list):
        if any(isinstance(item, dict) for item in value[:MAX_ITEMS]):
            return _messages_text(value, system)
        first = value[:MAX_ITEMS]
        return _in_context("\n".join(item for item in first if isinstance(item, str)), system)
    return ""


def prompt_text(body: object) -> str:
    """Chat ``messages``, completions ``prompt`` or embeddings/responses ``input``
    as one string, with the system prompt; "" when the body has none of them in a
    usable shape."""
    if not isinstance(body, dict):
        return ""
    # Anthropic's Messages API and OpenAI's Responses API give the system prompt beside
    # the messages (`system`, `instructions`), not among them.
    beside = content_text(body.get("system")) or content_text(body.get("instructions"))
    system = [beside] if beside else []
    messages = body.get("messages")
    if isinstance(messages, list):
        text = _messages_text(messages, system)
        if text:
            return text
    for key in ("prompt", "input"):
        text = _strings(body.get(key), system)
        if text:
            return text
    return ""
