"""Chat templates from GGUF files, rendered under a budget in the model worker.

A GGUF's Jinja template is code from whoever made the file. The sandbox (jinja2's immutable one, as
llama-cpp-python uses) keeps it from reaching Python; this module also keeps it from exhausting the
machine: ``{{ "x" * 300000000 }}`` once took 22 GB, and two nested ``range(100000)`` loops never
returned. A render gets :data:`RENDER_SECONDS` of wall-clock time, no value or prompt may exceed
:data:`MAX_TEXT` characters (or items), and the worker's address space may grow by at most
:data:`MEMORY_BUDGET` while it runs; past any of them the render stops with one error naming the
model (docs/cli.md ("Chat template limits")).
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from ..errors import InputError

RENDER_SECONDS = 10.0
MAX_TEXT = 8 << 20  # characters of any string (items of any list) a template makes, its prompt included
MEMORY_BUDGET = 1 << 30  # bytes the worker's address space may grow by during one render
_NUMBER = re.compile(r"\d+")


class OverBudget(BaseException):
    """A render past its budget (a BaseException, so no ``except Exception`` inside jinja2 swallows it)."""


class _TimedRange(Sequence):
    """``range`` whose iteration checks the deadline: empty nested loops make no call to check in."""

    def __init__(self, env: BoundedEnvironment, *args: int) -> None:
        self.env, self.range = env, range(*args)
        if len(self.range) > MAX_RANGE:
            raise OverBudget(f"range() of {len(self.range):,} items (at most {MAX_RANGE:,})")

    def __len__(self) -> int:
        return len(self.range)

    def __getitem__(self, index):  # type: ignore[override]
        return self.range[index]

    def __iter__(self) -> Iterator[int]:
        for i in self.range:
            self.env.tick()
            yield i


def _sized(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _check_format(fmt: Any) -> None:
    """``"%300000000s" % x`` and ``"{:>300000000}".format(x)`` build huge strings in one C call."""
    if isinstance(fmt, str) and any(len(n) > 7 and int(n) > MAX_TEXT for n in _NUMBER.findall(fmt)):
        raise OverBudget(f"a format with a width over {MAX_TEXT:,}")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with a deadline and a size limit on every operation that can build
    a large value at once (``*``, ``+``, ``**``, ``%``, ``range``, calls with huge numbers)."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def __init__(self, deadline: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline = deadline
        self.globals["range"] = lambda *args: _TimedRange(self, *args)

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise OverBudget(f"it ran for more than {RENDER_SECONDS:g} s")

    def call_binop(self, context, op: str, left: Any, right: Any) -> Any:  # noqa: ANN001 - jinja2's signature
        self.tick()
        if op == "*":
            for seq, n in ((left, right), (right, left)):
                if _sized(seq) and isinstance(n, int) and len(seq) * n > MAX_TEXT:
                    raise OverBudget(f"a value of {len(seq) * n:,} characters or items (at most {MAX_TEXT:,})")
        elif op == "+" and _sized(left) and _sized(right) and len(left) + len(right) > MAX_TEXT:
            raise OverBudget(f"a value of {len(left) + len(right):,} characters or items (at most {MAX_TEXT:,})")
        elif op == "**" and isinstance(right, int) and isinstance(left, int) and abs(left) > 1 and abs(right) > 4096:
            raise OverBudget(f"a power with the exponent {right:,}")
        elif op == "%":
            _check_format(left)
        return super().call_binop(context, op, left, right)

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - jinja2's signature
        __self.tick()
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_TEXT:
                raise OverBudget(f"a call with the number {value:,} (at most {MAX_TEXT:,})")
        if getattr(__obj, "__name__", "") in ("format", "format_map"):
            _check_format(getattr(__obj, "__self__", None))
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.tick()
        return super().getitem(obj, argument)


@contextmanager
def _hard_limits() -> Iterator[None]:
    """The wall-clock alarm (on the main thread: it interrupts even a loop that calls nothing) and
    the address-space limit for one render; both put back afterwards."""
    alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if alarm:
        def _expired(_signum, _frame) -> None:
            raise OverBudget(f"it ran for more than {RENDER_SECONDS:g} s")

        previous = signal.signal(signal.SIGALRM, _expired)
        signal.setitimer(signal.ITIMER_REAL, RENDER_SECONDS + 0.5)
    limits = _limit_memory()
    try:
        yield
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if limits is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, limits)


def _limit_memory() -> tuple[int, int] | None:
    """Lower RLIMIT_AS to the current size plus :data:`MEMORY_BUDGET`; returns the limits to restore."""
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as fh:
            size = int(fh.read().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        want = size + MEMORY_BUDGET
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        if soft != resource.RLIM_INFINITY and soft <= want:
            return None
        resource.setrlimit(resource.RLIMIT_AS, (want, hard))
        return soft, hard
    except (ImportError, OSError, ValueError):
        return None  # not Linux: the sandbox's own limits still hold


def render_chat(template: str, model: str, messages: list[dict], *, bos_token: str, eos_token: str,
                add_generation_prompt: bool = True) -> str:
    """``messages`` through the Jinja chat ``template`` of ``model`` (a name for messages), as
    llama-cpp-python's Jinja2ChatFormatter renders them, within the budget."""
    def raise_exception(message: str) -> None:
        raise ValueError(message)

    try:
        with _hard_limits():
            env = BoundedEnvironment(
                time.monotonic() + RENDER_SECONDS, loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True,
                extensions=[Jinja2ChatFormatter.IgnoreGenerationTags, jinja2.ext.loopcontrols],
            )
            env.filters["tojson"] = Jinja2ChatFormatter.tojson
            stream = env.from_string(template).generate(
                messages=messages, eos_token=eos_token, bos_token=bos_token, raise_exception=raise_exception,
                add_generation_prompt=add_generation_prompt, functions=None, function_call=None, tools=None,
                tool_choice=None, strftime_now=Jinja2ChatFormatter.strftime_now,
            )
            parts, size = [], 0
            for part in stream:
                size += len(part)
                if size > MAX_TEXT:
                    raise OverBudget(f"its prompt passed {MAX_TEXT:,} characters")
                env.tick()
                parts.append(part)
            return "".join(parts)
    except OverBudget as exc:
        reason = str(exc)
    except MemoryError:
        reason = f"it needed more than {MEMORY_BUDGET >> 20:,} MiB of memory"
    except Exception as exc:  # noqa: BLE001 - jinja raises many types for a broken template
        raise InputError(f"the chat template of {model} could not be rendered: {exc}") from None
    raise InputError(
        f"chat template of {model} exceeds the rendering budget ({RENDER_SECONDS:g} s, {MAX_TEXT:,} characters, "
        f"{MEMORY_BUDGET >> 20:,} MiB of memory): {reason}; choose another with --chat-template (e.g. chatml)"
    )


__all__ = ["MAX_TEXT", "MEMORY_BUDGET", "RENDER_SECONDS", "render_chat"]
