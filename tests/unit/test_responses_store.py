"""The stored-responses map behind `previous_response_id`: bounded in count, limited in time, per key."""

from __future__ import annotations

from sluicegate.api.openai.responses_store import ResponseStore, Turn


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def turn(text: str, parent: Turn | None = None) -> Turn:
    return Turn(({"role": "user", "content": text},), parent)


def test_put_get_and_delete() -> None:
    """A stored response can be read back once and deleted; then it is gone."""
    store = ResponseStore(60, 10)
    store.put("resp_1", b"{}", turn("a"), "key")
    found = store.get("resp_1", "key")
    assert found is not None and found.body == b"{}"
    assert store.delete("resp_1", "key") is True
    assert store.get("resp_1", "key") is None
    assert store.delete("resp_1", "key") is False


def test_other_keys_cannot_see_a_response() -> None:
    """Only the key that created a response can read or delete it; to others it does not exist."""
    store = ResponseStore(60, 10)
    store.put("resp_1", b"{}", turn("a"), "key-a")
    assert store.get("resp_1", "key-b") is None
    assert store.delete("resp_1", "key-b") is False
    assert store.get("resp_1", "key-a") is not None


def test_bounded_count_evicts_the_oldest() -> None:
    """Beyond max_stored the oldest entries are dropped first."""
    store = ResponseStore(60, 3)
    for i in range(5):
        store.put(f"resp_{i}", b"{}", turn(str(i)), None)
    assert len(store) == 3
    assert [store.get(f"resp_{i}", None) is not None for i in range(5)] == [False, False, True, True, True]


def test_retention_expires_entries() -> None:
    """An entry is readable until retention_s has passed, then never again, and writes purge it."""
    clock = Clock()
    store = ResponseStore(10, 100, clock=clock)
    store.put("old", b"{}", turn("a"), None)
    clock.now += 5
    store.put("new", b"{}", turn("b"), None)
    clock.now += 4.9
    assert store.get("old", None) is not None
    clock.now += 0.2
    assert store.get("old", None) is None
    assert store.get("new", None) is not None
    clock.now += 5
    store.put("newest", b"{}", turn("c"), None)
    assert len(store) == 1


def test_zero_max_stored_keeps_nothing() -> None:
    """`max_stored: 0` turns storing off."""
    store = ResponseStore(60, 0)
    store.put("resp_1", b"{}", turn("a"), None)
    assert len(store) == 0 and store.get("resp_1", None) is None


def test_shorter_retention_after_reload_still_expires_newer_entries() -> None:
    """After `configure` shortens retention, each entry's own deadline is honoured on read."""
    clock = Clock()
    store = ResponseStore(100, 10, clock=clock)
    store.put("long", b"{}", turn("a"), None)
    store.configure(1, 10)
    store.put("short", b"{}", turn("b"), None)
    clock.now += 2
    assert store.get("short", None) is None
    assert store.get("long", None) is not None


def test_conversation_survives_eviction_of_its_parent() -> None:
    """A turn holds its ancestors itself, so evicting an earlier response does not break a later chain."""
    store = ResponseStore(60, 1)
    first = turn("one")
    store.put("resp_1", b"{}", first, None)
    second = turn("two", first)
    store.put("resp_2", b"{}", second, None)
    assert store.get("resp_1", None) is None
    found = store.get("resp_2", None)
    assert found is not None
    assert [m["content"] for m in found.turn.conversation()] == ["one", "two"]


def test_long_chains_flatten_without_recursion() -> None:
    """A conversation of thousands of turns flattens in order (no recursion limit)."""
    head: Turn | None = None
    for i in range(5000):
        head = turn(str(i), head)
    assert head is not None
    messages = head.conversation()
    assert len(messages) == 5000 and messages[0]["content"] == "0" and messages[-1]["content"] == "4999"
