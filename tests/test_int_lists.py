"""The fast ``list<int>`` / ``list<bigint>`` decoder: the same values as the driver's
Python list decoder for every list, null elements included, and the driver's errors and
values for what it leaves to the driver."""

from __future__ import annotations

import random
import struct

import pytest
from cassandra import cqltypes

from tests import helpers
from transforms.int_lists import IntListDecoder, decode_int_lists

LONGS = cqltypes.lookup_casstype("ListType(LongType)")
INTS = cqltypes.lookup_casstype("ListType(Int32Type)")
WIDTHS = {LONGS: (8, "q"), INTS: (4, "i")}


def _encoded(list_type: type, values: list) -> bytes:
    """The wire bytes of a list, a null element as length -1 (the driver's encoder cannot
    write one)."""
    width, code = WIDTHS[list_type]
    out = [struct.pack(">i", len(values))]
    for value in values:
        if value is None:
            out.append(struct.pack(">i", -1))
        else:
            out.append(struct.pack(">i" + code, width, value))
    return b"".join(out)


@pytest.mark.parametrize("list_type", [LONGS, INTS], ids=["bigint", "int"])
def test_random_lists_decode_as_the_drivers_python_decoder(list_type: type) -> None:
    width, _ = WIDTHS[list_type]
    low, high = -(2 ** (width * 8 - 1)), 2 ** (width * 8 - 1) - 1
    decoder = IntListDecoder(list_type)
    rng = random.Random(7)
    for _ in range(3000):
        size = rng.choice([0, 1, 2, 3, 5, 64, 65, 200])
        nulls = rng.random() < 0.3
        values = [
            None
            if nulls and rng.random() < 0.4
            else rng.choice([low, high, 0, -1, rng.randint(low, high)])
            for _ in range(size)
        ]
        data = _encoded(list_type, values)
        assert decoder.deserialize(data, 4) == values
        if None not in values:
            assert list_type.deserialize(data, 4) == values  # the driver agrees


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">iiqi", 2, 8, 5, 0),  # an empty element
        struct.pack(">iiq", 3, 8, 1),  # truncated
        struct.pack(">iiqi", 1, 8, 1, 9),  # bytes after the last element
        struct.pack(">ii", 1, 4) + b"abcd",  # an element of another width
        struct.pack(">i", -2),  # a negative count
    ],
    ids=["empty-element", "truncated", "trailing", "narrow-element", "negative-count"],
)
def test_what_the_fast_paths_leave_gets_the_drivers_value_or_error(data: bytes) -> None:
    decoder = IntListDecoder(LONGS)
    ours = helpers.decoded_or_error(decoder.deserialize, data, 4)
    assert ours == helpers.decoded_or_error(LONGS.deserialize, data, 4)


def test_protocol_version_2_counts_in_16_bits() -> None:
    data = struct.pack(">HHq", 1, 8, 42)
    assert IntListDecoder(LONGS).deserialize(data, 2) == [42] == LONGS.deserialize(data, 2)


def test_lists_of_other_widths_are_not_taken() -> None:
    with pytest.raises(KeyError):
        IntListDecoder(cqltypes.lookup_casstype("ListType(ShortType)"))


def test_the_driver_decodes_null_elements_with_it() -> None:
    """Through the driver's Cython row parser, as a result page is read."""
    from cassandra import deserializers

    decode_int_lists()
    found = deserializers.find_deserializer(LONGS)
    assert "IntListDecoder" in repr(found)
    assert type(
        deserializers.find_deserializer(cqltypes.lookup_casstype("ListType(ShortType)"))
    ) is (deserializers.DesListType)


def test_a_zero_byte_list_is_read_as_null_by_the_drivers_row_parser() -> None:
    """A result page through the driver's Cython row parser: a ``list<bigint>`` column of a
    zero-byte value (the protocol allows one; the driver reads it as null), a null element
    and a full list."""
    from cassandra import protocol

    decode_int_lists()
    spec = struct.pack(">H", 2) + b"ks" + struct.pack(">H", 1) + b"t"
    column = struct.pack(">H", 1) + b"l" + struct.pack(">HH", 0x0020, 0x0002)
    lists = [b"", _encoded(LONGS, [5, None]), _encoded(LONGS, [1, 2, 3])]
    cells = b"".join(struct.pack(">i", len(data)) + data for data in lists)
    body = struct.pack(">iii", 2, 0x0001, 1) + spec + column + struct.pack(">i", 3) + cells
    opcode = protocol.ResultMessage.opcode
    message = protocol.ProtocolHandler.decode_message(4, {}, 0, 0, opcode, body, None, None)
    assert [row[0] for row in message.parsed_rows] == [None, [5, None], [1, 2, 3]]
