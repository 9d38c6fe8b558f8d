"""streams/stages/runtime.py: CPU-bound stage work runs one section at a time (the compute lock), and a
download's decoder lets the lock go while it waits for the next chunk of the body."""
import threading

from streams.stages.runtime import computing, holding


def test_holding_runs_the_call_with_the_lock_held_and_lets_it_go_after():
    lock = threading.Lock()
    assert holding(lock, lambda a, b: (lock.locked(), a + b))(2, 3) == (True, 5)
    assert not lock.locked()


def test_holding_lets_the_lock_go_when_the_call_raises():
    lock = threading.Lock()

    def bad():
        raise ValueError("x")

    try:
        holding(lock, bad)()
    except ValueError:
        pass
    assert not lock.locked()


def test_computing_holds_the_lock_while_decoding_and_not_while_waiting_for_a_chunk():
    lock = threading.Lock()
    seen = []

    def body():  # the download: each next() is I/O
        for chunk in (b"a", b"b", b"c"):
            seen.append(("read", lock.locked()))
            yield chunk

    def read(chunks, suffix):
        out = []
        for chunk in chunks:
            seen.append(("decode", lock.locked()))
            out.append(chunk + suffix)
        return out

    assert computing(lock, read)(body(), b"!") == [b"a!", b"b!", b"c!"]
    assert seen == [("read", False), ("decode", True)] * 3
    assert not lock.locked()


def test_another_thread_computes_while_a_download_waits():
    lock = threading.Lock()
    order = []
    waiting = threading.Event()
    computed = threading.Event()

    def body():
        waiting.set()
        assert computed.wait(5)  # the download waits; meanwhile the other thread takes the lock
        yield b"x"

    def other():
        assert waiting.wait(5)
        with lock:
            order.append("other computed")
        computed.set()

    t = threading.Thread(target=other)
    t.start()
    result = computing(lock, lambda chunks: [order.append("decoded") or c for c in chunks])(body())
    t.join(5)
    assert result == [b"x"] and order == ["other computed", "decoded"]


def test_a_decoder_error_or_a_broken_download_lets_the_lock_go():
    lock = threading.Lock()

    def broken():
        yield b"a"
        raise ConnectionError("reset")

    for read, body in ((lambda chunks: [1 / 0 for _ in chunks], iter([b"a"])),
                       (lambda chunks: list(chunks), broken())):
        try:
            computing(lock, read)(body)
        except (ZeroDivisionError, ConnectionError):
            pass
        assert not lock.locked()
