"""Decorator plumbing: annotations that only record metadata, and ``dualmethod``.

``@Core.receiver``, ``@RPC.export``, ``@PubSub.subscribe``... do nothing but attach a note to the
function (the idea of nameko's extensions): no registry is filled at import time. When an agent
object is built, :func:`collect_annotations` reads the notes of its class once and each subsystem
acts on the ones it owns.

``dualmethod`` lets one name be a decorator on the class and a method on the instance, as in the
original API: ``@PubSub.subscribe('pubsub', 'devices')`` vs
``self.vip.pubsub.subscribe('pubsub', 'devices', callback)``. Both forms keep their signatures for
a type checker.
"""

import functools
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

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


S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")
PC = ParamSpec("PC")
RC = TypeVar("RC")
C = TypeVar("C", bound=Callable[..., Any])


class dualmethod(Generic[S, P, R, C]):  # noqa: N801 - named like classmethod, which it resembles
    """A method with a class-level form (used as a decorator) and an instance-level form.

    ::

        class PubSub:
            def _subscribe_decorator(cls, peer, prefix, ...): ...          # @PubSub.subscribe(...)

            @dualmethod.with_class_form(_subscribe_decorator)
            def subscribe(self, peer, prefix, callback, ...): ...           # vip.pubsub.subscribe(...)

    Read on the class, the attribute is the class form bound to the class; read on an instance, the
    instance form bound to the instance; a type checker sees each with its own parameters (``C`` is
    the type of the class-level attribute). The class form's first parameter receives the class;
    :meth:`with_class_callable` takes a ready callable instead (one with overloads, say). The
    original spelling (``@dualmethod`` then ``@subscribe.classmethod`` on a second ``def subscribe``)
    still works at run time, but a type checker takes the second ``def`` for a redefinition.
    """

    def __init__(
        self,
        finstance: Callable[Concatenate[S, P], R],
        fclass: Callable[..., Any] | None = None,
    ) -> None:
        self.finstance = finstance
        self.fclass = fclass
        functools.update_wrapper(self, finstance)  # type: ignore[arg-type]  # copies __doc__ etc.

    @staticmethod
    def with_class_form(
        fclass: Callable[Concatenate[Any, PC], RC],
    ) -> Callable[[Callable[Concatenate[S, P], R]], "dualmethod[S, P, R, Callable[PC, RC]]"]:
        """Decorator: a dualmethod whose instance form is the decorated function, class form ``fclass``."""

        def make(finstance: Callable[Concatenate[S, P], R]) -> "dualmethod[S, P, R, Callable[PC, RC]]":
            return dualmethod[S, P, R, Callable[PC, RC]](finstance, fclass)

        return make

    @staticmethod
    def with_class_callable(
        decorator: C,
    ) -> Callable[[Callable[Concatenate[S, P], R]], "dualmethod[S, P, R, C]"]:
        """Decorator: like :meth:`with_class_form`, the class-level attribute being ``decorator`` itself."""

        def fclass(cls: Any, *args: Any, **kwargs: Any) -> Any:
            return decorator(*args, **kwargs)

        def make(finstance: Callable[Concatenate[S, P], R]) -> "dualmethod[S, P, R, C]":
            return dualmethod[S, P, R, C](finstance, fclass)

        return make

    def classmethod(self, fclass: Callable[..., Any]) -> "dualmethod[S, P, R, Any]":
        """Set the class-level form (the original spelling; not seen by a type checker)."""
        return type(self)(self.finstance, fclass)

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> C: ...

    @overload
    def __get__(self, instance: S, owner: type[Any] | None = None) -> Callable[P, R]: ...

    def __get__(self, instance: S | None, owner: type[Any] | None = None) -> C | Callable[P, R]:
        if instance is None:
            if self.fclass is None:
                raise AttributeError(f"{self.finstance.__name__} is an instance method")
            bound: C = self.fclass.__get__(owner, owner)
            return bound
        method: Callable[P, R] = self.finstance.__get__(instance, owner)
        return method
