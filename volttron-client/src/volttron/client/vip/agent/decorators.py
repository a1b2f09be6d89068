"""Decorator plumbing: annotations that only record metadata, and ``dualmethod``.

``@Core.receiver``, ``@RPC.export``, ``@PubSub.subscribe``... do nothing but attach a note to the
function (the idea of nameko's extensions): no registry is filled at import time. When an agent
object is built, :func:`collect_annotations` reads the notes of its class once and each subsystem
acts on the ones it owns.

``dualmethod`` lets one name be a decorator on the class and a method on the instance, as in the
original API: ``@PubSub.subscribe('pubsub', 'devices')`` vs
``self.vip.pubsub.subscribe('pubsub', 'devices', callback)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

ANNOTATIONS_ATTR = "_volttron_annotations"

F = TypeVar("F", bound=Callable[..., Any])


def annotate(func: F, kind: str, value: Any) -> F:
    """Append ``value`` to the ``kind`` notes of ``func`` and return ``func`` unchanged."""
    target = getattr(func, "__func__", func)
    notes = target.__dict__.get(ANNOTATIONS_ATTR)
    if notes is None:
        notes = {}
        setattr(target, ANNOTATIONS_ATTR, notes)
    notes.setdefault(kind, []).append(value)
    return func


def annotations(func: Any, kind: str) -> list[Any]:
    """The ``kind`` notes of ``func`` (a function or bound method), oldest first."""
    target = getattr(func, "__func__", func)
    notes = getattr(target, ANNOTATIONS_ATTR, None)
    return list(notes.get(kind, ())) if notes else []


def collect_annotations(obj: Any) -> dict[str, list[tuple[Callable[..., Any], Any]]]:
    """``{kind: [(bound method, note), ...]}`` for every annotated method of ``obj``'s class.

    A method overridden in a subclass counts as the subclass defines it: an override without
    decorators is not exported, subscribed or scheduled.
    """
    found: dict[str, list[tuple[Callable[..., Any], Any]]] = {}
    seen: set[str] = set()
    for klass in type(obj).__mro__:
        for name in vars(klass):
            if name in seen:
                continue
            seen.add(name)
            member = getattr(type(obj), name, None)
            func = getattr(member, "__func__", member)
            notes = getattr(func, ANNOTATIONS_ATTR, None) if callable(func) else None
            if not notes:
                continue
            bound = getattr(obj, name)
            for kind, values in notes.items():
                found.setdefault(kind, []).extend((bound, value) for value in values)
    return found


T = TypeVar("T")


class dualmethod(Generic[T]):  # noqa: N801 - named like classmethod, which it resembles
    """A method with a class-level form (used as a decorator) and an instance-level form.

    ::

        class PubSub:
            @dualmethod
            def subscribe(self, peer, prefix, callback, ...): ...      # vip.pubsub.subscribe(...)
            @subscribe.classmethod
            def subscribe(cls, peer, prefix, ...): ...                 # @PubSub.subscribe(...)
    """

    def __init__(self, finstance: Callable[..., T], fclass: Callable[..., T] | None = None) -> None:
        self.finstance = finstance
        self.fclass = fclass
        functools.update_wrapper(self, finstance)

    def classmethod(self, fclass: Callable[..., T]) -> dualmethod[T]:
        """Set the class-level form."""
        return type(self)(self.finstance, fclass)

    def __get__(self, instance: Any, owner: type | None = None) -> Callable[..., T]:
        if instance is None:
            if self.fclass is None:
                raise AttributeError(f"{self.finstance.__name__} is an instance method")
            return self.fclass.__get__(owner, owner)
        return self.finstance.__get__(instance, owner)
