"""Perfetto's native trace format: the records of :func:`pipenaut.trace.trace_records` as protobuf
TrackEvents, written packet by packet with the perfetto package's streaming trace builder.

Tracks are declared with explicit order (workers in order inside a run, runs in the given order),
slices nest by begin/end events, flows chain through ``flow_ids``, counters carry their unit,
and slice arguments become debug annotations.
"""

from __future__ import annotations

from typing import IO, Iterator

from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import CounterDescriptor, TrackDescriptor, TrackEvent
from perfetto.trace_builder.proto_builder import StreamingTraceProtoBuilder

from .trace import Counter, CounterTrack, Instant, Process, Slice, Thread

_SEQUENCE = 1
_UNITS = {"count": CounterDescriptor.UNIT_COUNT, "bytes": CounterDescriptor.UNIT_SIZE_BYTES}


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def write_pftrace(f: IO[bytes], records: Iterator) -> None:
    builder = StreamingTraceProtoBuilder(f)
    uuids: dict[tuple, int] = {}
    open_slices: dict[int, list[tuple[int, int]]] = {}  # track -> stack of (end ns, track)
    first = True

    def packet():
        nonlocal first
        p = builder.create_packet()
        p.trusted_packet_sequence_id = _SEQUENCE
        if first:  # tell the reader this sequence does not depend on earlier state
            p.sequence_flags = 1  # SEQ_INCREMENTAL_STATE_CLEARED
            first = False
        return p

    def describe(uuid: int, fill) -> None:
        p = packet()
        p.track_descriptor.uuid = uuid
        fill(p.track_descriptor)
        builder.write_packet(p)

    def event(track: int, ns: int, kind, fill=None) -> None:
        p = packet()
        p.timestamp = ns
        p.track_event.type = kind
        p.track_event.track_uuid = track
        if fill is not None:
            fill(p.track_event)
        builder.write_packet(p)

    def close_until(track: int, ns: int | None) -> None:
        stack = open_slices.setdefault(track, [])
        while stack and (ns is None or stack[-1] <= ns):
            event(track, stack.pop(), TrackEvent.TYPE_SLICE_END)

    for r in records:
        if isinstance(r, Process):
            uuids["p", r.pid] = uuid = len(uuids) + 1

            def process(d, r=r):
                d.process.pid = r.pid
                d.process.process_name = r.name
                d.child_ordering = TrackDescriptor.EXPLICIT
                d.process_ordering = TrackDescriptor.PROCESS_ORDERING_EXPLICIT
                d.sibling_order_rank = r.order

            describe(uuid, process)
        elif isinstance(r, Thread):
            uuids["t", r.tid] = uuid = len(uuids) + 1

            def thread(d, r=r):
                d.parent_uuid = uuids["p", r.pid]
                d.thread.pid = r.pid
                d.thread.tid = r.tid
                d.thread.thread_name = r.name
                d.sibling_order_rank = r.order

            describe(uuid, thread)
        elif isinstance(r, CounterTrack):
            uuids["c", r.pid, r.key] = uuid = len(uuids) + 1

            def counter(d, r=r):
                d.parent_uuid = uuids["p", r.pid]
                d.name = r.name
                d.counter.unit = _UNITS[r.unit]

            describe(uuid, counter)
        elif isinstance(r, Slice):
            track = uuids["t", r.tid]
            start, end = _ns(r.start), _ns(r.end)
            close_until(track, start)

            def begin(e, r=r):
                e.name = r.name
                e.categories.append(r.category)
                _annotate(e, r.args)
                if r.flow is not None and r.flow_out:
                    e.flow_ids.append(r.flow)
                elif r.flow is not None and r.flow_in:
                    e.terminating_flow_ids.append(r.flow)

            event(track, start, TrackEvent.TYPE_SLICE_BEGIN, begin)
            open_slices[track].append(end)
        elif isinstance(r, Counter):

            def value(e, r=r):
                e.double_counter_value = float(r.value)

            event(uuids["c", r.pid, r.key], _ns(r.time), TrackEvent.TYPE_COUNTER, value)
        elif isinstance(r, Instant):

            def instant(e, r=r):
                e.name = r.name
                _annotate(e, r.args)

            event(uuids["p", r.pid], _ns(r.time), TrackEvent.TYPE_INSTANT, instant)
    for track in list(open_slices):
        close_until(track, None)


def _annotate(e, args: dict) -> None:
    for key, value in args.items():
        a = e.debug_annotations.add()
        a.name = key
        if isinstance(value, bool) or value is None:
            a.string_value = str(value)
        elif isinstance(value, int):
            a.int_value = value
        elif isinstance(value, float):
            a.double_value = value
        else:
            a.string_value = str(value)
