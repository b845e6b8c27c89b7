"""The book's thread pool: ``ThreadPool``, ``Worker``, ``Job`` and the channel.

This module knows nothing about HTTP or sockets (book-spec A1): it runs
zero-argument callables on a fixed set of threads, and the web server is just
one of its users.

The book's design, in Python terms:

* ``Job`` is ``Box<dyn FnOnce() + Send + 'static>``: any callable taking no
  arguments.
* :class:`Channel` is the ``mpsc`` channel behind ``Arc<Mutex<Receiver>>``: a
  deque guarded by one lock, with conditions to sleep on. Workers share the
  receiving end; taking a job holds the lock only for the ``popleft`` (the
  book's listing 21-20, not the ``while let`` trap of 21-21), so a long job
  never blocks the other workers.
* Closing the channel is dropping the sender: workers drain what is queued,
  then see "disconnected" and leave their loops.
* ``with ThreadPool(4) as pool:`` — leaving the block is the book's ``Drop``:
  close the channel, then join every worker in id order.

One policy the book does not need, waking workers only on demand, is a
subclass in :mod:`threaded.wake`; this module is the book's pool alone.

Where the book panics or unwraps, this pool raises a clear exception or logs
and carries on (book-spec F2, F6, F7, F11, and the "Where a real server must
go further" list): a job that raises is logged and its worker lives on, so the
pool never shrinks; a thread that cannot be started undoes the threads already
started; shutting down never raises because a worker died.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Self, TypeAlias, TypeVar

__all__ = [
    "Channel",
    "ChannelClosedError",
    "Job",
    "PoolCreationError",
    "PoolShutDownError",
    "ThreadPool",
    "Worker",
]

logger = logging.getLogger(__name__)

Job: TypeAlias = Callable[[], object]
"""A unit of work: any callable with no arguments (its result is ignored)."""

T = TypeVar("T")

JOIN_SLICE = 0.1
"""Shutdown joins a worker in waits of at most this long (see :func:`_join`)."""


class ChannelClosedError(RuntimeError):
    """Sending on a channel that has been closed."""


class PoolCreationError(Exception):
    """``ThreadPool.build`` could not make a pool (the book's ``PoolCreationError``)."""


class PoolShutDownError(RuntimeError):
    """A job was submitted to a pool that has been shut down."""


class Channel(Generic[T]):
    """A closable FIFO channel with an optional capacity, shared by threads.

    The counterpart of the book's ``mpsc`` channel with the receiver behind
    ``Arc<Mutex<_>>``: any number of threads may send and receive, each item
    goes to exactly one receiver, in the order sent. It is hand-built on a
    deque and one lock (rather than ``queue.Queue``) so that the mechanism the
    book explains stays visible, and so that closing is part of the type: a
    receiver learns the channel is finished from :meth:`recv` itself, as a
    Rust worker does from ``recv()`` returning ``Err``.

    ``capacity=None`` is unbounded, like the book's channel. With a capacity,
    :meth:`send` waits for room and :meth:`try_send` reports "full" at once —
    the latter is what lets a server answer 503 instead of queueing without
    limit.

    Every item sent wakes a sleeping receiver, as the book's channel does.
    """

    def __init__(self, capacity: int | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"channel capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._items: collections.deque[T] = collections.deque()
        self._closed = False
        # One lock, two conditions on it (the shape of queue.Queue): receivers
        # sleep on "not empty", bounded senders on "not full".
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._senders_waiting = 0

    def __len__(self) -> int:
        """How many items are waiting (a snapshot: other threads move on)."""
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def send(self, item: T, timeout: float | None = None) -> bool:
        """Queue ``item``, waiting for room while the channel is full.

        Returns False if ``timeout`` seconds pass without room. Raises
        :class:`ChannelClosedError` if the channel is (or becomes) closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    raise ChannelClosedError("send on a closed channel")
                if not self._full():
                    self._push(item)
                    return True
                self._senders_waiting += 1
                try:
                    if deadline is None:
                        self._not_full.wait()
                    else:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return False
                        self._not_full.wait(left)
                finally:
                    self._senders_waiting -= 1

    def try_send(self, item: T) -> bool:
        """Queue ``item`` if there is room; False at once if the channel is full.

        Raises :class:`ChannelClosedError` if the channel is closed.
        """
        with self._lock:
            if self._closed:
                raise ChannelClosedError("send on a closed channel")
            if self._full():
                return False
            self._push(item)
            return True

    def _push(self, item: T) -> None:
        """Queue ``item`` and wake a receiver (lock held)."""
        self._items.append(item)
        self._not_empty.notify()

    def recv(self) -> T | None:
        """The next item, waiting for one; None once closed and drained.

        Items queued before :meth:`close` are still handed out: like Rust's
        channel, "disconnected" is reported only when the channel is empty.
        """
        with self._lock:
            items = self._items
            while not items:
                if self._closed:
                    return None
                self._wait_for_items()
            item = items.popleft()
            self._taken(item)
            return item

    def _wait_for_items(self) -> None:
        """Sleep until an item is sent or the channel closes (lock held)."""
        self._not_empty.wait()

    def _full(self) -> bool:
        """No room for another item (lock held)."""
        return self.capacity is not None and len(self._items) >= self.capacity

    def _taken(self, item: T) -> None:
        """An item was just taken: room for a waiting sender (lock held)."""
        if self._senders_waiting:
            self._not_full.notify()

    def close(self) -> None:
        """No more sends; wake every waiting receiver and sender. Idempotent."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()


class Worker:
    """One thread of the pool, with the id the book's log messages use.

    The thread loops: receive a job, run it, repeat; it ends when the channel
    reports closed-and-empty. It is a daemon thread so that a job still hung
    after a bounded :meth:`ThreadPool.shutdown` cannot keep the process alive
    (the book's ``join`` would wait forever).
    """

    def __init__(self, id: int, receiver: Channel[Job]) -> None:
        self.id = id
        self._receiver = receiver
        self.thread = threading.Thread(
            target=self._run, name=f"worker-{id}", daemon=True
        )

    def start(self) -> None:
        """Start the thread (may raise ``RuntimeError`` if the OS refuses)."""
        self.thread.start()

    def _run(self) -> None:
        worker_id = self.id
        receiver = self._receiver
        while True:
            job = receiver.recv()
            if job is None:
                logger.debug("Worker %d disconnected; shutting down.", worker_id)
                return
            logger.debug("Worker %d got a job; executing.", worker_id)
            try:
                job()
            except BaseException:  # a job must never end its worker
                # Even SystemExit: in a pool thread it would only kill this
                # thread and shrink the pool, which the book's server suffered
                # from (book-spec, "Panics on ordinary bad input").
                logger.exception("Worker %d: the job raised; carrying on.", worker_id)
            # Drop our reference before waiting, so the job's resources are
            # released now, not when the next job arrives.
            del job

    def __repr__(self) -> str:
        return f"Worker(id={self.id}, alive={self.thread.is_alive()})"


def _join(thread: threading.Thread, deadline: float | None) -> bool:
    """Join ``thread`` by ``deadline`` (monotonic; None: no limit); True if it ended.

    In slices of :data:`JOIN_SLICE`: a signal handler runs in the main thread
    only when that thread runs Python, and a signal that lands just before the
    join's wait begins interrupts nothing. Waking now and then bounds how long
    such a signal (a second Ctrl-C, say) waits for its handler.
    """
    while True:
        wait = JOIN_SLICE
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        thread.join(wait)
        if not thread.is_alive():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


class ThreadPool:
    """A fixed number of worker threads running queued jobs.

    ``ThreadPool(size)`` starts ``size`` workers with ids ``0..size-1``.
    ``capacity`` bounds the jobs waiting for a worker (None: unbounded, as in
    the book). Use it as a context manager: leaving the ``with`` block is the
    book's ``Drop`` — queued jobs finish and every worker is joined.

    Raises ``ValueError`` if ``size < 1`` (the book's ``new`` panics), and
    :class:`PoolCreationError` if a thread cannot be started (the threads
    already started are shut down first).
    """

    def __init__(self, size: int, capacity: int | None = None) -> None:
        if size < 1:
            raise ValueError(f"a thread pool needs at least one thread, not {size}")
        self._sender = self._channel(size, capacity)
        self._workers: list[Worker] = []
        for worker_id in range(size):
            worker = Worker(worker_id, self._sender)
            try:
                worker.start()
            except RuntimeError as error:  # "can't start new thread"
                self.shutdown()
                raise PoolCreationError(
                    f"could start only {worker_id} of {size} threads: {error}"
                ) from error
            self._workers.append(worker)
        self.size = size
        self.workers: tuple[Worker, ...] = tuple(self._workers)
        """Every worker, in id order (kept after shutdown, for inspection)."""

    def _channel(self, size: int, capacity: int | None) -> Channel[Job]:
        """The channel the workers share (a subclass may bring its own)."""
        return Channel(capacity)

    @classmethod
    def build(cls, size: int, capacity: int | None = None) -> Self:
        """Like ``ThreadPool(size)``, but every failure is a :class:`PoolCreationError`.

        The book's ``ThreadPool::build`` returning ``Result<ThreadPool,
        PoolCreationError>``: for callers that treat a bad size as a runtime
        condition rather than a programming error.
        """
        try:
            return cls(size, capacity)
        except ValueError as error:
            raise PoolCreationError(str(error)) from error

    def execute(self, job: Job) -> None:
        """Queue ``job`` for the next free worker (waiting while the queue is full).

        Raises :class:`PoolShutDownError` after :meth:`shutdown`.
        """
        try:
            self._sender.send(job)
        except ChannelClosedError:
            raise PoolShutDownError(
                "execute() on a thread pool that was shut down"
            ) from None

    def try_execute(self, job: Job) -> bool:
        """Queue ``job`` if the queue has room; False at once if it is full.

        Raises :class:`PoolShutDownError` after :meth:`shutdown`.
        """
        try:
            return self._sender.try_send(job)
        except ChannelClosedError:
            raise PoolShutDownError(
                "execute() on a thread pool that was shut down"
            ) from None

    def blocking(self) -> contextlib.AbstractContextManager[None]:
        """For a job: ``with pool.blocking(): time.sleep(5)`` marks a long wait.

        It changes nothing here; a pool that wakes workers on demand
        (:mod:`threaded.wake`) needs to know, so its users mark waits either way.
        """
        return contextlib.nullcontext()

    def nudge(self) -> float | None:
        """Nothing to watch in the book's pool (see :mod:`threaded.wake`)."""
        return None

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker right now."""
        return len(self._sender)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop taking jobs, let queued ones finish, and join every worker.

        The book's ``Drop``: close the channel first (otherwise the first
        ``join`` would wait forever on a worker blocked in ``recv``), then, in
        id order, log ``Shutting down worker {id}`` and join it. ``timeout``
        bounds the whole wait; returns True if every worker has ended. Safe
        to call again (it joins whatever is still running) and from a job
        (the calling worker is not joined with itself).
        """
        self._sender.close()
        deadline = None if timeout is None else time.monotonic() + timeout
        current = threading.current_thread()
        remaining: list[Worker] = []
        for worker in self._workers:
            if worker.thread is current:
                remaining.append(worker)
                continue
            logger.debug("Shutting down worker %d", worker.id)
            if not _join(worker.thread, deadline):
                remaining.append(worker)
        self._workers = remaining
        return not remaining

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"ThreadPool(size={self.size}, queued={self.queued})"
