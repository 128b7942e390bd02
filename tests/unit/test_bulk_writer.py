"""`gridmap.cases.bulk.Writer`: writes run in order on their own thread; a failed write is raised to the caller
(at its next hand-over or at the close) and the writes after it are dropped; a block left by an exception stops the
thread without running what was still waiting; unthreaded, each write runs at once."""

from __future__ import annotations

import threading

import pytest

from gridmap.cases.bulk import Writer


def test_writes_run_in_order_on_a_thread_of_their_own():
    done: list[tuple[int, str]] = []
    with Writer(depth=2) as writer:
        for i in range(50):
            writer.put(lambda i=i: done.append((i, threading.current_thread().name)))
    assert [i for i, _ in done] == list(range(50))
    assert {name for _, name in done} == {"gridmap-bulk-writer"}
    assert not any(t.name == "gridmap-bulk-writer" for t in threading.enumerate())


def test_unthreaded_writes_run_at_once_in_the_caller_s_thread():
    done: list[str] = []
    writer = Writer(threaded=False)
    writer.put(lambda: done.append(threading.current_thread().name))
    assert done == [threading.current_thread().name]
    writer.close()


def test_a_failed_write_is_raised_and_the_writes_after_it_are_dropped():
    done: list[int] = []
    failed = threading.Event()

    def fail() -> None:
        failed.set()
        raise RuntimeError("the database refused")

    writer = Writer()
    writer.put(lambda: done.append(1))
    writer.put(fail)
    failed.wait(5)
    with pytest.raises(RuntimeError, match="refused"):
        for _ in range(100):  # raised at a hand-over once the writer has failed
            writer.put(lambda: done.append(2))
    assert done == [1]
    writer.close()  # closed already: nothing more to raise
    with pytest.raises(RuntimeError, match="refused"), Writer() as other:
        other.put(fail)  # raised at the close when no hand-over follows


def test_a_block_left_by_an_exception_stops_the_writer_without_the_waiting_writes():
    started, release = threading.Event(), threading.Event()
    done: list[int] = []

    def slow() -> None:
        started.set()
        release.wait(5)
        done.append(0)

    with pytest.raises(KeyError), Writer(depth=3) as writer:
        writer.put(slow)
        started.wait(5)
        writer.put(lambda: done.append(1))
        writer.put(lambda: done.append(2))
        threading.Timer(0.2, release.set).start()
        raise KeyError("the caller failed")
    assert done == [0]  # the running write finished, the waiting ones never ran
    assert not any(t.name == "gridmap-bulk-writer" for t in threading.enumerate())
