"""The private Pykka hooks supervision overrides still exist with the expected shape."""

from __future__ import annotations

import pykka
import pytest

from supervision import SimpleQueueInbox, check_pykka_hooks
from supervision._pykka_hooks import PYKKA_HOOKS


def test_the_installed_pykka_has_every_hook() -> None:
    check_pykka_hooks()


def test_a_changed_hook_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PYKKA_HOOKS, "_handle_receive", ["self", "envelope"])
    with pytest.raises(RuntimeError, match="_handle_receive"):
        check_pykka_hooks()


def test_the_simple_queue_inbox_carries_messages() -> None:
    class Echo(SimpleQueueInbox, pykka.ThreadingActor):
        def on_receive(self, message: object) -> object:
            return message

    ref = Echo.start()
    try:
        assert ref.ask("hello", timeout=10) == "hello"
    finally:
        ref.stop()
