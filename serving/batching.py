"""Server-side batching with the rules of TF Serving's batching session.

With --enable_batching every signature call (Predict, Regress, Classify and warmup) goes through a
per-signature queue, as servables/tensorflow/bundle_factory_util.cc WrapSessionForBatching sets
up. What a client can observe is reproduced from the source:

- batching/batching_util.h ComputeTensorBatchSize: no inputs, a rank-0 input, or inputs whose 0th
  dimensions differ are refused (INVALID_ARGUMENT) before queueing;
- TF core shared_batch_scheduler.h ValidateBatchTaskQueueCapacity: a request larger than
  max_batch_size is refused; with enable_large_batch_splitting it is split into pieces of at most
  max_execution_batch_size rows; a full queue answers UNAVAILABLE;
- batching/batching_session.cc MergeInputTensors: tensors from different requests must agree
  beyond the 0th dimension (FAILED_PRECONDITION) unless pad_variable_length_inputs, which pads
  with each tensor's first element (an empty tensor cannot be padded: INVALID_ARGUMENT); a batch
  is padded up to the next allowed_batch_sizes entry with copies of the last request's first row;
- batching_session.cc SplitOutputTensors: every output must have a 0th dimension equal to the
  batch size (FAILED_PRECONDITION), and an error fails every request in the batch.

A batch runs when it is full, when batch_timeout_micros have passed since it opened, or when a
later batch is waiting. Each queue has one thread (TF Serving shares num_batch_threads threads).
"""
import collections
import dataclasses
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

import grpc
import numpy as np

from serving import tf_serving_config
from serving.status import ServingError, failed_precondition, invalid_argument

Tensors = Dict[str, np.ndarray]

# TF core SharedBatchScheduler::QueueOptions defaults, used for fields the file leaves unset.
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_MAX_ENQUEUED_BATCHES = 10


@dataclasses.dataclass(frozen=True)
class Options:
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_s: float = 0.0
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    allowed_batch_sizes: Sequence[int] = ()
    pad_variable_length_inputs: bool = False

    @property
    def execution_limit(self) -> int:
        return self.max_execution_batch_size if self.enable_large_batch_splitting else self.max_batch_size


def options_from(parameters: tf_serving_config.BatchingParameters) -> Options:
    """bundle_factory_util.h GetQueueOptions, with WrapSessionForBatching's check of the last
    allowed batch size (a mismatch fails the model's load, INVALID_ARGUMENT)."""
    max_batch = parameters.max_batch_size.value if parameters.HasField("max_batch_size") else DEFAULT_MAX_BATCH_SIZE
    splitting = parameters.HasField("enable_large_batch_splitting") and parameters.enable_large_batch_splitting.value
    allowed = list(parameters.allowed_batch_sizes)
    if allowed and allowed[-1] != max_batch:
        raise invalid_argument("Last entry in allowed_batch_sizes must match max_batch_size; last "
                               f"entry was {allowed[-1]}; expected {max_batch}")
    return Options(
        max_batch_size=max_batch,
        batch_timeout_s=(parameters.batch_timeout_micros.value / 1e6
                         if parameters.HasField("batch_timeout_micros") else 0.0),
        max_enqueued_batches=(parameters.max_enqueued_batches.value if parameters.HasField("max_enqueued_batches")
                              else DEFAULT_MAX_ENQUEUED_BATCHES),
        enable_large_batch_splitting=splitting,
        max_execution_batch_size=(parameters.max_execution_batch_size.value
                                  if splitting and parameters.HasField("max_execution_batch_size") else max_batch),
        allowed_batch_sizes=tuple(allowed),
        pad_variable_length_inputs=parameters.pad_variable_length_inputs)


def batch_size(inputs: Tensors) -> int:
    """batching_util.h ComputeTensorBatchSize."""
    if not inputs:
        raise invalid_argument("Batching Run() must have at least one input tensor")
    sizes = set()
    for value in inputs.values():
        if value.ndim == 0:
            raise invalid_argument("Batching Run() input tensors must have at least one dimension")
        sizes.add(value.shape[0])
    if len(sizes) > 1:
        raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
    return sizes.pop()


def _pad(value: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """batching_util.cc PadTensor: pads dimensions >= 1 at the end with the tensor's first element."""
    if tuple(value.shape[1:]) == tuple(shape[1:]):
        return value
    if value.size == 0:
        raise invalid_argument("Got empty tensor in batch of non-empty tensors.")
    padded = np.full([value.shape[0], *shape[1:]], value.flat[0], dtype=value.dtype)
    padded[tuple(slice(0, d) for d in value.shape)] = value
    return padded


class _Task:
    """One request: its inputs, and the outputs of its pieces as batches finish them."""

    def __init__(self, inputs: Tensors, size: int):
        self.inputs, self.size = inputs, size
        self.parts: Dict[int, Tensors] = {}
        self.rows_done = 0
        self.error: Optional[ServingError] = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self.enqueued = time.monotonic()

    def finish(self, start: int, rows: int, outputs: Optional[Tensors], error: Optional[ServingError]) -> None:
        with self._lock:
            if error is not None and self.error is None:
                self.error = error
            if outputs is not None:
                self.parts[start] = outputs
            self.rows_done += rows
            complete = self.error is not None or self.rows_done >= self.size
        if complete:
            self.done.set()

    def outputs(self) -> Tensors:
        if len(self.parts) == 1:
            return next(iter(self.parts.values()))
        ordered = [self.parts[start] for start in sorted(self.parts)]
        return {key: np.concatenate([part[key] for part in ordered]) for key in ordered[0]}


@dataclasses.dataclass
class _Piece:
    task: _Task
    start: int
    stop: int

    def inputs(self) -> Tensors:
        if self.start == 0 and self.stop == self.task.size:
            return self.task.inputs
        return {key: value[self.start:self.stop] for key, value in self.task.inputs.items()}


@dataclasses.dataclass
class _Batch:
    pieces: List[_Piece] = dataclasses.field(default_factory=list)
    size: int = 0
    opened: float = dataclasses.field(default_factory=time.monotonic)


class Queue:
    """One signature's batch queue and the thread that runs its batches."""

    def __init__(self, options: Options, execute: Callable[[Tensors], Tensors], name: str):
        self.options, self._execute = options, execute
        self._batches: collections.deque = collections.deque()
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=f"batch-{name}", daemon=True)
        self._thread.start()

    def run(self, inputs: Tensors) -> Tensors:
        task = _Task(inputs, batch_size(inputs))
        if not self._schedule(task):
            self._finish(_Batch([_Piece(task, 0, task.size)], task.size))
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs()

    def _schedule(self, task: _Task) -> bool:
        """Queues the task; False once the queue has stopped (the caller then runs it alone)."""
        options, limit = self.options, self.options.execution_limit
        if task.size > options.max_batch_size:
            raise invalid_argument(f"Task size {task.size} is larger than maximum input batch size "
                                   f"{options.max_batch_size}")
        with self._condition:
            if self._stopped:
                return False
            open_batch = self._batches[-1] if self._batches else None
            room = limit - open_batch.size if open_batch else 0
            if options.enable_large_batch_splitting:
                sizes, left = [], task.size
                if room > 0:
                    sizes.append(min(room, left))
                    left -= sizes[0]
                while left > 0:
                    sizes.append(min(limit, left))
                    left -= sizes[-1]
            else:
                sizes = [task.size]
            new_batches = len(sizes) - (1 if room >= sizes[0] else 0)
            if len(self._batches) + new_batches > options.max_enqueued_batches:
                raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                   "The batch scheduling queue to which this task was submitted is full")
            start = 0
            for size in sizes:
                if not self._batches or self._batches[-1].size + size > limit:
                    self._batches.append(_Batch())
                batch = self._batches[-1]
                batch.pieces.append(_Piece(task, start, start + size))
                batch.size += size
                start += size
            self._condition.notify()
        return True

    def _next_batch(self) -> Optional[_Batch]:
        """The next batch to run; once stopped, the batches still queued, then None."""
        with self._condition:
            while True:
                if self._batches:
                    batch = self._batches[0]
                    wait = batch.opened + self.options.batch_timeout_s - time.monotonic()
                    if (self._stopped or batch.size >= self.options.execution_limit or len(self._batches) > 1
                            or wait <= 0):
                        return self._batches.popleft()
                    self._condition.wait(wait)
                elif self._stopped:
                    return None
                else:
                    self._condition.wait()

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._finish(batch)

    def _finish(self, batch: _Batch) -> None:
        """Runs a batch and hands each task its rows of the outputs, or the batch's error."""
        try:
            outputs = self._run_batch(batch)
        except ServingError as e:
            for piece in batch.pieces:
                piece.task.finish(piece.start, piece.stop - piece.start, None, e)
            return
        offset = 0
        for piece in batch.pieces:
            rows = piece.stop - piece.start
            piece.task.finish(piece.start, rows, {k: v[offset:offset + rows] for k, v in outputs.items()}, None)
            offset += rows

    def _run_batch(self, batch: _Batch) -> Tensors:
        """batching_session.cc MergeInputTensors, the run, and SplitOutputTensors' checks."""
        pieces = [piece.inputs() for piece in batch.pieces]
        merged: Tensors = {}
        for key in pieces[0]:
            values = [inputs[key] for inputs in pieces]
            if self.options.pad_variable_length_inputs:
                shape = np.max([v.shape for v in values], axis=0)
                values = [_pad(v, shape) for v in values]
            elif any(v.shape[1:] != values[0].shape[1:] for v in values[1:]):
                raise failed_precondition(
                    f"Tensors with name '{key}' from different tasks have different shapes and padding is "
                    "turned off. Set pad_variable_length_inputs to true, or ensure that all tensors with the "
                    "same name have equal dimensions starting with the first dim.")
            padding = self._allowed_size(batch.size) - batch.size
            if padding:
                values.append(np.repeat(values[-1][:1], padding, axis=0))
            merged[key] = np.concatenate(values)
        total = batch.size + padding
        outputs = self._execute(merged)
        for value in outputs.values():
            if value.ndim == 0:
                raise failed_precondition("Batched output tensor has 0 dimensions")
            if value.shape[0] != total:
                raise failed_precondition("Batched output tensor's 0th dimension does not equal the sum of "
                                          "the 0th dimension sizes of the input tensors")
        return outputs

    def _allowed_size(self, size: int) -> int:
        """batching_util.cc RoundToLowestAllowedBatchSize."""
        return next((allowed for allowed in self.options.allowed_batch_sizes if allowed >= size), size)

    def stop(self) -> None:
        """Ends the queue once the requests it holds are answered. A request that reaches it later
        (one that got this version just before it was unloaded) runs on its own: in TF Serving a
        request holds its version until it is answered, and the unload waits for it."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        self._thread.join()
