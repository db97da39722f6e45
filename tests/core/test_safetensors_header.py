"""The stdlib header reader accepts exactly the files safetensors.safe_open accepts.

Every case is a byte string written to a file and given to both; a refusal must be a
HeaderError (a ValueError) with a one-line message, never another exception. The seeded
generator covers header lengths (low byte 0x80 as in a pickle, first bytes 'PK' as in a zip),
JSON shapes (types, nesting depth, repeated keys, NaN, surrogates), offsets and dtypes.
"""
import json
import random
import struct

import pytest

safetensors = pytest.importorskip("safetensors")
pytest.importorskip("numpy")

from model_sampling_flow.checkpoint import detect_rectified_flow, inspect_checkpoint  # noqa: E402
from model_sampling_flow.safetensors_header import (DTYPE_BITS, MAX_JSON_DEPTH, HeaderError,  # noqa: E402
                                                    read_header)

SEED_CASES = 1000


def safe_open_accepts(path):
    try:
        with safetensors.safe_open(str(path), framework="numpy") as handle:
            return sorted(handle.keys()), handle.metadata()
    except Exception as error:         # safetensors raises SafetensorError, OSError, ...: all refusals
        return error


def ours(path):
    try:
        return read_header(path)
    except HeaderError as error:
        assert "\n" not in str(error) and str(path) in str(error)
        return error


def assert_agree(path):
    theirs, mine = safe_open_accepts(path), ours(path)
    assert isinstance(theirs, Exception) == isinstance(mine, Exception), (path.read_bytes()[:300], theirs, mine)
    if not isinstance(mine, Exception):
        keys, metadata = theirs
        assert mine.tensor_count == len(keys) and sorted(mine.tensors) == keys
        assert mine.metadata == (metadata or {})
    # whatever the bytes, the inspector and Auto answer without an exception of another kind
    try:
        inspect_checkpoint(path)
    except ValueError:
        pass
    is_rf, reason = detect_rectified_flow(path)
    assert isinstance(is_rf, bool) and isinstance(reason, str)
    return not isinstance(mine, Exception)


def write(path, header, data=b"", length=None):
    raw = header if isinstance(header, bytes) else header.encode("utf-8", "surrogatepass")
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


# -------------------------------------------------------------------------------------------
# the cases the issue names, and the reference's rules one by one
U8 = '"dtype":"U8","shape":[2],"data_offsets":[0,2]'
CASES = {
    "repeated tensor, the last wins": ('{"a":{%s},"a":{%s}}' % (U8, U8), b"\0\0", True),
    "repeated tensor, first with a wrong size": ('{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]},"a":{%s}}'
                                                 % U8, b"\0\0", True),
    "repeated tensor, first not a u64": ('{"a":{"dtype":"U8","shape":[99999999999999999999],"data_offsets":[0,0]},'
                                         '"a":{%s}}' % U8, b"\0\0", False),
    "__metadata__ twice": ('{"__metadata__":{},"__metadata__":{},"a":{%s}}' % U8, b"\0\0", False),
    "__metadata__ null": ('{"__metadata__":null,"a":{%s}}' % U8, b"\0\0", True),
    "__metadata__ a list": ('{"__metadata__":[],"a":{%s}}' % U8, b"\0\0", False),
    "__metadata__ a number": ('{"__metadata__":3,"a":{%s}}' % U8, b"\0\0", False),
    "__metadata__ value a number": ('{"__metadata__":{"k":1},"a":{%s}}' % U8, b"\0\0", False),
    "__metadata__ shaped like a tensor": ('{"__metadata__":{%s}}' % U8, b"\0\0", False),
    "unknown field ignored": ('{"a":{%s,"extra":{"x":[1,2,{"y":null}]}}}' % U8, b"\0\0", True),
    "NaN in an unknown field": ('{"a":{%s,"extra":NaN}}' % U8, b"\0\0", False),
    "1e400 in an unknown field": ('{"a":{%s,"extra":1e400}}' % U8, b"\0\0", False),
    "lone surrogate": ('{"__metadata__":{"k":"\\ud800"},"a":{%s}}' % U8, b"\0\0", False),
    "surrogate pair": ('{"__metadata__":{"k":"\\ud83d\\ude00"},"a":{%s}}' % U8, b"\0\0", True),
    "unknown dtype": ('{"a":{"dtype":"F12","shape":[2],"data_offsets":[0,2]}}', b"\0\0", False),
    "byte size not shape x dtype": ('{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,2]}}', b"\0\0", False),
    "boolean offset": ('{"a":{"dtype":"U8","shape":[2],"data_offsets":[false,2]}}', b"\0\0", False),
    "-0 offset": ('{"a":{"dtype":"U8","shape":[2],"data_offsets":[-0,2]}}', b"\0\0", False),
    "float shape": ('{"a":{"dtype":"U8","shape":[2.0],"data_offsets":[0,2]}}', b"\0\0", False),
    "object shape": ('{"a":{"dtype":"U8","shape":{},"data_offsets":[0,0]}}', b"", False),
    "gap": ('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"\0\0", False),
    "overlap": ('{"a":{%s},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}' % U8, b"\0\0", False),
    "zero-size at the end": ('{"a":{%s},"b":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}}' % U8, b"\0\0", True),
    "zero-size inside a tensor": ('{"a":{%s},"b":{"dtype":"U8","shape":[0],"data_offsets":[1,1]}}' % U8, b"\0\0",
                                  False),
    "trailing data byte": ('{"a":{%s}}' % U8, b"\0\0\0", False),
    "missing data byte": ('{"a":{%s}}' % U8, b"\0", False),
    "sub-byte dtype, whole bytes": ('{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}', b"\0\0", True),
    "sub-byte dtype, half a byte": ('{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', b"\0\0", False),
    "shape overflows before a zero": ('{"a":{"dtype":"U8","shape":[4294967296,4294967296,0],'
                                      '"data_offsets":[0,0]}}', b"", False),
    "zero before a huge shape": ('{"a":{"dtype":"U8","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}',
                                 b"", True),
    "depth at the limit": ('{"a":{%s,"e":%s}}' % (U8, "[" * (MAX_JSON_DEPTH - 2) + "]" * (MAX_JSON_DEPTH - 2)),
                           b"\0\0", True),
    "depth over the limit": ('{"a":{%s,"e":%s}}' % (U8, "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)),
                             b"\0\0", False),
    "very deep": ('{"a":{%s,"e":%s}}' % (U8, "[" * 100000 + "]" * 100000), b"\0\0", False),
    "top-level array": ("[]", b"", False),
    "byte order mark": ('\ufeff{"a":{%s}}' % U8, b"\0\0", False),
    "trailing comma": ('{"a":{%s},}' % U8, b"\0\0", False),
    "not UTF-8": (b'{"__metadata__":{"k":"\xff"}}', b"", False),
    "empty object, no data": ("{}", b"", True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_rules(tmp_path, name):
    header, data, valid = CASES[name]
    path = write(tmp_path / "case.safetensors", header, data)
    assert assert_agree(path) is valid


@pytest.mark.parametrize("low_byte", [0x80, ord("P")])
def test_header_lengths_that_look_like_pickle_or_zip(tmp_path, low_byte):
    # a valid file whose 8-byte length starts with 0x80 (pickle's first byte) or 'PK' (a zip's)
    lengths = [256 * k + low_byte for k in (1, 2, 3, 7)] + ([0x4B50] if low_byte == ord("P") else [])
    for length in lengths:
        body = '{"a":{%s}}' % U8
        header = body + " " * (length - len(body))
        path = write(tmp_path / f"l{length}.safetensors", header, b"\0\0")
        assert path.read_bytes()[0] == low_byte
        assert assert_agree(path) is True


# -------------------------------------------------------------------------------------------
# the seeded generator
DTYPES = sorted(DTYPE_BITS) + ["F12", "u8", "", "BOOLEAN"]


def random_json_value(rng, depth=0):
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, 1, -1, 2 ** 64, 2 ** 64 - 1, 3])
    if kind == 2:
        return rng.choice([0.5, -0.0, 1e300])
    if kind in (3, 4, 5):
        return rng.choice(["", "x", "rectified_flow", "floor_999", "v", "\u2603", "a\nb"])
    if kind in (6, 7):
        return [random_json_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice("abc"): random_json_value(rng, depth + 1) for _ in range(rng.randrange(3))}


def random_header(rng):
    """(header text, data bytes) near a valid file: most fields valid, one or two perturbed."""
    count = rng.randrange(0, 5)
    entries, offset = [], 0
    for index in range(count):
        dtype = rng.choice(["F16", "U8", "F32", "BF16", "F4", "C64"])
        shape = [rng.randrange(0, 4) for _ in range(rng.randrange(0, 3))]
        elements = 1
        for dim in shape:
            elements *= dim
        size = elements * DTYPE_BITS[dtype] // 8
        if elements * DTYPE_BITS[dtype] % 8:
            shape, size = [], DTYPE_BITS[dtype] // 8 if DTYPE_BITS[dtype] >= 8 else 0
            if DTYPE_BITS[dtype] < 8:
                shape = [0]
        info = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
        entries.append([f"t{index}", info])
    metadata = {"modelspec.prediction_type": rng.choice(["rectified_flow", "epsilon", "v"]), "k": "v"}
    perturbations = rng.randrange(0, 3)
    for _ in range(perturbations):
        infos = [entry[1] for entry in entries if isinstance(entry[1], dict)]
        choice = rng.randrange(11) if infos else rng.choice([3, 4, 8])
        if choice == 0:
            rng.choice(infos)["dtype"] = rng.choice(DTYPES)
        elif choice == 1:
            rng.choice(infos)["shape"] = random_json_value(rng)
        elif choice == 2:
            rng.choice(infos)["data_offsets"] = rng.choice(
                [[0, 1], [1, 0], [True, 2], [0], [0, 1, 2], [2 ** 64, 2 ** 64], random_json_value(rng)])
        elif choice == 3:
            metadata = random_json_value(rng)
        elif choice == 4:
            metadata = {"k": random_json_value(rng)}
        elif choice == 5:
            rng.choice(infos)["extra"] = random_json_value(rng)
        elif choice == 6:
            name, info = rng.choice(entries)
            entries.append([name, json.loads(json.dumps(info))])   # a repeated name
        elif choice == 7:
            rng.choice(entries)[1] = random_json_value(rng)
        elif choice == 8:
            offset += rng.choice([-1, 1])
        elif choice == 9:
            rng.choice(infos).pop(rng.choice(["dtype", "shape", "data_offsets"]), None)
        elif choice == 10:                                    # nesting around serde_json's limit
            depth = rng.randrange(MAX_JSON_DEPTH - 4, MAX_JSON_DEPTH + 3)
            rng.choice(infos)["extra"] = json.loads("[" * depth + "]" * depth)
    parts = [json.dumps("__metadata__") + ":" + json.dumps(metadata)] if rng.random() < 0.8 else []
    parts += [json.dumps(name) + ":" + json.dumps(info) for name, info in entries]
    rng.shuffle(parts)
    separators = rng.choice([(",", ""), (", ", " ")])
    text = "{" + separators[0].join(parts) + "}"
    if separators[1]:
        text = text.replace('":', '": ')
    text += " " * rng.randrange(0, 9)
    return text, b"\0" * max(offset, 0)


def test_seeded_random_headers_agree_with_safe_open(tmp_path):
    rng = random.Random(13)
    outcomes = {True: 0, False: 0}
    for case in range(SEED_CASES):
        header, data = random_header(rng)
        path = write(tmp_path / f"r{case % 7}.safetensors", header, data)
        outcomes[assert_agree(path)] += 1
    assert min(outcomes.values()) > SEED_CASES // 10, outcomes     # both sides of the line are exercised


def test_seeded_random_length_fields_agree_with_safe_open(tmp_path):
    rng = random.Random(1313)
    body = '{"a":{%s}}' % U8
    for case in range(200):
        length = rng.choice([0, 1, 7, len(body) - 1, len(body), len(body) + 1, 2 ** 63, 100_000_001,
                             rng.randrange(2 ** 64), 0x4B50, 0x80 + 256 * rng.randrange(1, 64)])
        data = body.encode() + b"\0" * rng.choice([0, 2, 5])
        path = tmp_path / f"n{case % 5}.safetensors"
        path.write_bytes(struct.pack("<Q", length) + data[:rng.choice([len(data), len(data) // 2])])
        assert_agree(path)


@pytest.mark.parametrize("seed", range(3))
def test_seeded_random_sidecars_never_raise(tmp_path, seed):
    rng = random.Random(seed)
    path = write(tmp_path / "model.safetensors", '{"model.diffusion_model.out.2.bias":{%s}}' % U8, b"\0\0")
    for _ in range(60):
        sidecar = {key: random_json_value(rng) for key in ("prediction_type", "shift", "timestep_mapping",
                                                            "shift_mode") if rng.random() < 0.7}
        if rng.random() < 0.5:
            sidecar["prediction_type"] = "rectified_flow"
        text = json.dumps(sidecar) if rng.random() < 0.8 else json.dumps(random_json_value(rng))
        (tmp_path / "model.flow.json").write_text(text)
        report = inspect_checkpoint(path)
        assert isinstance(report.verdict.is_rf, bool)
        assert set(report.verdict.settings) <= {"shift", "timestep_mapping", "shift_mode"}
        assert detect_rectified_flow(path)[0] == report.verdict.is_rf
