"""CallbackGroup: several callbacks registered with Lightning as one, dispatched only where they act.

Lightning calls every hook of every registered callback — six per training batch even when the callback does
not override them — each through a profiler context: about 2.3 µs per callback and hook on the reference CPU,
so five telemetry callbacks cost ~70 µs per optimizer step before measuring anything (1.4% of the 4.8 ms step of
the default MNIST-1D experiment). A group receives each hook once and forwards it only to the members whose
class overrides it. Members stay ordinary callbacks (usable on their own), called in the order given; their
checkpoint state is saved under their own ``state_key`` inside the group's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

HOOKS = tuple(name for name in vars(Callback) if name.startswith("on_") or name in ("setup", "teardown"))
C = TypeVar("C", bound=Callback)


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback``'s class implements ``hook`` (rather than inheriting Lightning's no-op)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


class CallbackGroup(Callback):
    """``members`` as one Lightning callback (see the module docstring)."""

    def __init__(self, members: Sequence[Callback]) -> None:
        self.members = list(members)
        keys = [member.state_key for member in self.members]
        if len(set(keys)) != len(keys):
            raise ValueError(f"members of a CallbackGroup need distinct state keys, got {keys}")
        self._dispatch: dict[str, list[Callable[..., Any]]] = {
            hook: [getattr(member, hook) for member in self.members if overrides(member, hook)] for hook in HOOKS
        }

    def state_dict(self) -> dict[str, Any]:
        states = {member.state_key: member.state_dict() for member in self.members}
        return {key: state for key, state in states.items() if state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for member in self.members:
            if member.state_key in state_dict:
                member.load_state_dict(state_dict[member.state_key])


def _forwarding(hook: str) -> Callable[..., None]:
    def forward(self: CallbackGroup, *args: Any, **kwargs: Any) -> None:
        for method in self._dispatch[hook]:
            method(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = hook
    forward.__doc__ = f"``{hook}`` of the members that implement it, in order."
    return forward


for _hook in HOOKS:
    setattr(CallbackGroup, _hook, _forwarding(_hook))


def members(callbacks: Sequence[Callback]) -> Iterator[Callback]:
    """Every callback in ``callbacks`` (e.g. ``trainer.callbacks``), the members of groups included."""
    for callback in callbacks:
        if isinstance(callback, CallbackGroup):
            yield from members(callback.members)
        else:
            yield callback


def find(trainer: pl.Trainer, kind: type[C]) -> list[C]:
    """The callbacks of ``trainer`` that are instances of ``kind``, looking inside groups."""
    callbacks: list[Callback] = trainer.callbacks  # type: ignore[attr-defined]
    return [callback for callback in members(callbacks) if isinstance(callback, kind)]
