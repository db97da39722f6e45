"""Read and validate a safetensors header with the standard library alone, in bounded memory.

A safetensors file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON

    {tensor name: {"dtype": str, "shape": [int, ...], "data_offsets": [begin, end]}, ...,
     "__metadata__": {str: str}}          (optional)

and then the tensor data. `read_header` accepts exactly the files the reference implementation
(huggingface/safetensors, `safetensors/src/tensor.rs`: `read_metadata`, `Metadata::validate`)
accepts and refuses the others with a `HeaderError` naming the file and what is wrong:
  * N <= 100 000 000 and 8 + N <= file size; the header is UTF-8 JSON as serde_json parses it
    (no NaN/Infinity, no out-of-range floats, no lone surrogate escapes, nesting depth <= 127);
  * every tensor's dtype is one of `DTYPE_BITS`; shape and offsets are unsigned 64-bit integers
    (not booleans, not floats, not -0); the element count times the dtype width is a whole number
    of bytes equal to end - begin, computed without 64-bit overflow, left to right as the
    reference does;
  * sorted by (begin, end) the tensors tile the data section with no gap or overlap, starting at
    0, and the last end is exactly the data size (the file has no trailing bytes);
  * `__metadata__` (at most once; null is allowed) maps strings to strings. A repeated tensor
    name or metadata key keeps its last value, as serde's maps do.
Tensor data is never read. Memory: the header text, plus per tensor one name and one packed
offset pair; tensor records are kept only for the names `keep(name)` selects, and metadata only
for the keys `keep_metadata(key)` selects (every key is counted). See docs/bench_inspector.txt.
"""
import json
import os
import re
import stat
import struct
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 100_000_000        # safetensors' MAX_HEADER_SIZE
MAX_JSON_DEPTH = 127                  # serde_json refuses deeper nesting ("recursion limit exceeded")
_U64_MAX = 2 ** 64 - 1
# safetensors 0.8 `Dtype` and `Dtype::bitsize`
DTYPE_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
METADATA_KEY = "__metadata__"
_WS = re.compile(r"[ \t\n\r]*")
_UINT = r"(?:0|[1-9][0-9]{0,19})"
# an entry spelled the usual way (keys in this order, no escapes in the name, any JSON whitespace):
# parsed without building JSON objects; any other spelling goes through the json module
_CANONICAL_ENTRY = re.compile(
    r'"([^"\\\x00-\x1f]*)"{w}:{w}\{{{w}"dtype"{w}:{w}"([A-Z0-9_]+)"{w},{w}"shape"{w}:{w}'
    r'\[{w}((?:{u}(?:{w},{w}{u})*)?){w}\]{w},{w}"data_offsets"{w}:{w}\[{w}({u}){w},{w}({u}){w}\]{w}\}}'
    .format(w=r"[ \t\n\r]*", u=_UINT))
_CANONICAL_METADATA = re.compile(r'"([^"\\\x00-\x1f]*)"[ \t\n\r]*:[ \t\n\r]*"([^"\\\x00-\x1f]*)"')
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class HeaderError(ValueError):
    """A file that is not a complete, valid safetensors file; the message names it."""


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple
    data_offsets: tuple


@dataclass
class Header:
    """What `read_header` found. tensors holds only the kept names; tensor_count counts all."""
    path: str
    file_bytes: int
    header_bytes: int
    tensor_count: int
    tensors: dict = field(default_factory=dict)        # name -> TensorInfo, the kept ones
    metadata: dict = field(default_factory=dict)       # key -> value, the kept ones
    metadata_count: int = 0                            # entries in __metadata__, kept or not
    has_metadata: bool = False


def _keep_all(_name):
    return True


def _refuse_number(text):
    raise ValueError(f"number out of range: {text[:40]}")


def _parse_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        _refuse_number(text)
    return value


def _parse_int(text):
    # serde_json reads '-0', negative and above-u64 integers as floats, which no usize field accepts
    if text[0] == "-" or len(text) > 20:
        return _parse_float(text)
    value = int(text)
    return value if value <= _U64_MAX else float(value)


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


class _Object(list):
    """A JSON object as its list of (key, value) pairs, so repeated fields stay visible."""


_DECODER = json.JSONDecoder(object_pairs_hook=_Object, parse_float=_parse_float, parse_int=_parse_int,
                            parse_constant=_no_constant, strict=True)
_scanstring = json.decoder.scanstring


def _depth_and_strings(value, base_depth, check_surrogates):
    """Raise ValueError when `value` nests deeper than MAX_JSON_DEPTH or holds a lone surrogate."""
    stack = [(value, base_depth)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ValueError("recursion limit exceeded")
            for element in item:
                if isinstance(element, tuple):       # a (key, value) pair of an object
                    if check_surrogates:
                        _check_text(element[0])
                    stack.append((element[1], depth))
                else:
                    stack.append((element, depth))
        elif check_surrogates and isinstance(item, str):
            _check_text(item)


def _check_text(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate escape") from None


def _is_u64(value):
    return type(value) is int and 0 <= value <= _U64_MAX


def _tensor_info_error(info):
    """None when `info` is a valid safetensors TensorInfo object (as pairs), else why not."""
    if not isinstance(info, _Object):
        return f"expected an object, got {_json_type(info)}"
    fields = {}
    for key, value in info:
        if key in ("dtype", "shape", "data_offsets"):
            if key in fields:
                return f"duplicate field {key!r}"
            fields[key] = value
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in fields]
    if missing:
        return f"missing field {missing[0]!r}"
    dtype, shape, offsets = fields["dtype"], fields["shape"], fields["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        return f"unknown dtype {dtype!r}"[:200]
    if type(shape) is not list or not all(_is_u64(d) for d in shape):
        return f"shape must be a list of unsigned integers, got {shape!r}"[:200]
    if not (type(offsets) is list and len(offsets) == 2 and all(_is_u64(o) for o in offsets)):
        return f"data_offsets must be two unsigned integers, got {offsets!r}"[:200]
    return None


def _size_error(dtype, shape, begin, end):
    """Why (begin, end) cannot hold `shape` of `dtype`, or None (`Metadata::validate`, which runs on
    the last entry of a repeated name only)."""
    elements = 1
    for dim in shape:                       # left to right with overflow checks, as the reference
        elements *= dim
        if elements > _U64_MAX:
            return f"shape {list(shape)!r} overflows"[:200]
    bits = elements * DTYPE_BITS[dtype]
    if bits > _U64_MAX:
        return f"shape {list(shape)!r} overflows"[:200]
    if bits % 8:
        return f"{elements} elements of {dtype} are not a whole number of bytes"
    if end >= begin and end - begin != bits // 8:
        return (f"shape {list(shape)!r} of {dtype} needs {bits // 8} bytes but data_offsets "
                f"[{begin}, {end}] hold {end - begin}")[:300]
    return None


def _json_type(value):
    return {_Object: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


def _open_regular(path, what):
    """Open `path` for binary reading; a user-terms HeaderError when it is missing or not a file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise HeaderError(f"{what} {path!r} does not exist") from None
    except OSError as error:
        raise HeaderError(f"{what} {path!r} cannot be read: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise HeaderError(f"{what} {path!r} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise HeaderError(f"{what} {path!r} is not a regular file")
    try:
        return open(path, "rb"), info.st_size
    except OSError as error:
        raise HeaderError(f"{what} {path!r} cannot be read: {error.strerror}") from None


def _foreign_format(prefix):
    """What a file that is not safetensors looks like, from its first bytes (never unpickled)."""
    if prefix[:4] == b"PK\x03\x04":
        return "a zip archive (torch.save writes its pickles in one)"
    if len(prefix) >= 2 and prefix[0] == 0x80 and 2 <= prefix[1] <= 5:
        return "a pickle"
    if prefix[:4] == b"GGUF":
        return "a GGUF file"
    return None


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")


def read_header(path, keep=_keep_all, keep_metadata=_keep_all):
    """Validated header of the safetensors file at `path`; tensor data is never read.

    keep(name) -> bool selects the tensors whose TensorInfo is returned; keep_metadata(key) the
    metadata entries. Raises HeaderError (a ValueError) naming the file for anything
    safetensors.safe_open would refuse, and for missing files, folders and unreadable files.
    Nothing is ever unpickled: a pickle or zip (torch.save) file is only named as such.
    """
    path = os.fspath(path)
    handle, file_bytes = _open_regular(path, "file")
    with handle:
        prefix = handle.read(8)
        try:
            return _read(path, handle, prefix, file_bytes, keep, keep_metadata)
        except HeaderError:
            handle.seek(8)
            if handle.read(1) == b"{":      # a safetensors header that is damaged or truncated
                raise
            foreign = _foreign_format(prefix)
            if foreign is None and path.lower().endswith(PICKLE_SUFFIXES):
                foreign = f"a {os.path.splitext(path)[1]} file, a pickle-based format"
            if foreign:
                raise HeaderError(f"file {path!r} is not a safetensors file: it is {foreign}; it is never "
                                  "opened here because unpickling can run arbitrary code. Convert it to "
                                  ".safetensors first.") from None
            raise


def _read(path, handle, prefix, file_bytes, keep, keep_metadata):
    if len(prefix) < 8:
        raise HeaderError(f"file {path!r} is not a safetensors file: it holds {file_bytes} bytes, "
                          "fewer than the 8-byte header length")
    (header_bytes,) = struct.unpack("<Q", prefix)
    if header_bytes > MAX_HEADER_BYTES:
        looks = ""
        if all(32 <= b < 127 or b in (9, 10, 13) for b in prefix):
            looks = f" (it starts with {prefix.decode('ascii')!r}, like a text file)"
        raise HeaderError(f"file {path!r} is not a safetensors file: its first 8 bytes are not a "
                          f"safetensors header length (at most {MAX_HEADER_BYTES}){looks}")
    if 8 + header_bytes > file_bytes:
        raise HeaderError(f"file {path!r} is not a safetensors file or is truncated: its header "
                          f"needs {header_bytes} bytes but only {file_bytes - 8} follow the length")
    raw = handle.read(header_bytes)
    if len(raw) != header_bytes:
        raise HeaderError(f"file {path!r} changed while it was read")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HeaderError(f"file {path!r} is not a safetensors file: its header is not UTF-8 "
                          f"(byte {error.start})") from None
    del raw
    header = Header(path=path, file_bytes=file_bytes, header_bytes=header_bytes, tensor_count=0)
    try:
        data_end = _parse(text, header, keep, keep_metadata)
    except HeaderError as error:
        raise HeaderError(f"file {path!r} is not a valid safetensors file: {error}") from None
    except (ValueError, RecursionError) as error:
        raise HeaderError(f"file {path!r} is not a valid safetensors file: its header is not valid "
                          f"JSON ({str(error)[:200]})") from None
    data_bytes = file_bytes - 8 - header_bytes
    if data_end != data_bytes:
        raise HeaderError(f"file {path!r} is not a valid safetensors file: its tensors cover {data_end} "
                          f"data bytes but the file holds {data_bytes}"
                          + (" (truncated)" if data_end > data_bytes else ""))
    return header


def _after_member(text, idx):
    """Past an object member's value: (start of the next member, False) after a ',', or (the index
    past the closing '}', True). ValueError on a trailing comma or anything else, as serde_json."""
    idx = _WS.match(text, idx).end()
    if text.startswith(",", idx):
        idx = _WS.match(text, idx + 1).end()
        if text.startswith("}", idx):
            raise ValueError("trailing comma")
        return idx, False
    if text.startswith("}", idx):
        return idx + 1, True
    raise ValueError(f"expected ',' or '}}' at character {idx}")


def _parse(text, header, keep, keep_metadata):
    """Stream the top-level object of `text` into `header`; returns the end of the data section."""
    surrogates = _MAYBE_SURROGATE.search(text) is not None
    offsets = {}                             # name -> begin << 64 | end (the last entry of a name wins)
    idx = _WS.match(text, 0).end()
    if not text.startswith("{", idx):
        raise HeaderError("its header is not a JSON object")
    idx = _WS.match(text, idx + 1).end()
    if text.startswith("}", idx):
        idx += 1
    else:
        canonical = _CANONICAL_ENTRY.match
        while True:
            entry = canonical(text, idx)
            if entry is not None and entry.group(1) != METADATA_KEY:
                name, dtype, shape_text, begin, end = entry.groups()
                idx = entry.end()
                begin, end = int(begin), int(end)
                shape = tuple(map(int, shape_text.split(","))) if shape_text else ()
                if (dtype not in DTYPE_BITS or begin > _U64_MAX or end > _U64_MAX
                        or (len(shape_text) >= 20 and any(dim > _U64_MAX for dim in shape))):
                    raise HeaderError(f"tensor {_short(name)}: unknown dtype {dtype!r}, or a shape or "
                                      f"data_offsets value above 2^64 - 1")
                size_error = _size_error(dtype, shape, begin, end)
                offsets[name] = begin << 64 | end if size_error is None else size_error
                if keep(name):
                    header.tensors[name] = TensorInfo(dtype, shape, (begin, end))
                idx, closed = _after_member(text, idx)
                if closed:
                    break
            name, idx = _member_key(text, idx, "a name")
            if name == METADATA_KEY:
                if header.has_metadata:
                    raise HeaderError("duplicate field '__metadata__'")
                header.has_metadata = True
                idx = _parse_metadata(text, idx, header, keep_metadata, surrogates)
            else:
                value, idx = _DECODER.raw_decode(text, idx)
                if surrogates:
                    _check_text(name)
                problem = _tensor_info_error(value)
                if problem:
                    raise HeaderError(f"tensor {_short(name)}: {problem}")
                if len(value) > 3:                   # unknown fields: serde ignores them but parses them
                    _depth_and_strings(value, 1, surrogates)
                fields = {k: v for k, v in value if k in ("dtype", "shape", "data_offsets")}
                begin, end = fields["data_offsets"]
                size_error = _size_error(fields["dtype"], fields["shape"], begin, end)
                offsets[name] = begin << 64 | end if size_error is None else size_error
                if keep(name):
                    header.tensors[name] = TensorInfo(fields["dtype"], tuple(fields["shape"]), (begin, end))
            idx, closed = _after_member(text, idx)
            if closed:
                break
    if _WS.match(text, idx).end() != len(text):
        raise ValueError(f"trailing characters at character {idx}")
    header.tensor_count = len(offsets)
    for name, value in offsets.items():
        if isinstance(value, str):
            raise HeaderError(f"tensor {_short(name)}: {value}"[:300])
    packed = sorted(offsets.values())
    del offsets
    start = 0
    mask = _U64_MAX
    for value in packed:
        begin, end = value >> 64, value & mask
        if begin != start or end < begin:
            raise HeaderError(f"data_offsets [{begin}, {end}] leave a gap or overlap at byte {start} "
                              "(tensors must cover the data section contiguously)")
        start = end
    return start


def _member_key(text, idx, what):
    """(key, index of its value) for the JSON object member `"key":` starting at `idx`; ValueError
    saying `what` was expected when `idx` holds no string key and colon."""
    if not text.startswith('"', idx):
        raise ValueError(f"expected {what} at character {idx}")
    key, idx = _scanstring(text, idx + 1, True)
    idx = _WS.match(text, idx).end()
    if not text.startswith(":", idx):
        raise ValueError(f"expected ':' at character {idx}")
    return key, _WS.match(text, idx + 1).end()


def _parse_metadata(text, idx, header, keep_metadata, surrogates):
    if text.startswith("null", idx):
        return idx + 4
    if not text.startswith("{", idx):
        value, _ = _DECODER.raw_decode(text, idx)
        raise HeaderError(f"__metadata__ must map strings to strings, got {_json_type(value)}")
    idx = _WS.match(text, idx + 1).end()
    if text.startswith("}", idx):
        return idx + 1
    canonical = _CANONICAL_METADATA.match
    while True:
        entry = canonical(text, idx)
        if entry is not None:
            key, value = entry.groups()
            idx = entry.end()
        else:
            key, idx = _member_key(text, idx, "a metadata key")
            if not text.startswith('"', idx):
                value, _ = _DECODER.raw_decode(text, idx)
                raise HeaderError(f"__metadata__ must map strings to strings; {_short(key)} is "
                                  f"{_json_type(value)}")
            value, idx = _scanstring(text, idx + 1, True)
            if surrogates:
                _check_text(key)
                _check_text(value)
        header.metadata_count += 1
        if keep_metadata(key):
            header.metadata[key] = value
        idx = _WS.match(text, idx).end()
        if text.startswith(",", idx):
            idx = _WS.match(text, idx + 1).end()
            if text.startswith("}", idx):
                raise ValueError("trailing comma")
            continue
        if text.startswith("}", idx):
            return idx + 1
        raise ValueError(f"expected ',' or '}}' at character {idx}")


def _short(text, limit=80):
    text = repr(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."
