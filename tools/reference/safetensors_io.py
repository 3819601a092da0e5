"""Minimal safetensors reader/writer (standard library + torch only).

Format (https://github.com/huggingface/safetensors, "Format" section of its README):
  bytes [0, 8)        u64 little-endian N = length of the JSON header
  bytes [8, 8 + N)    UTF-8 JSON: {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
                      optional "__metadata__": {str: str}}; padded with spaces (0x20) so that
                      8 + N is a multiple of 8
  bytes [8 + N, end)  raw little-endian tensor data; offsets are relative to this byte buffer,
                      tensors are contiguous, row-major, non-overlapping and cover it exactly.
"""
import json
import struct
import sys

import torch

assert sys.byteorder == "little", "this writer assumes a little-endian host"

# safetensors dtype string -> (torch dtype, bytes per element)
DTYPES = {
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I32": (torch.int32, 4),
    "I64": (torch.int64, 8),
}
_TORCH_TO_ST = {v[0]: k for k, v in DTYPES.items()}

# dtypes whose bytes we move through an integer view of the same width
_BITS_VIEW = {torch.float16: torch.int16, torch.bfloat16: torch.int16}


def _tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype in _BITS_VIEW:
        t = t.view(_BITS_VIEW[t.dtype])
    return t.numpy().tobytes() if t.numel() else b""


def serialize(tensors, metadata=None):
    """tensors: dict name -> torch.Tensor (dtype in DTYPES). Returns the file as bytes.

    Tensors are laid out in the dict's iteration order."""
    header = {}
    if metadata:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()), \
            "__metadata__ must map str -> str"
        header["__metadata__"] = dict(metadata)
    chunks, offset = [], 0
    for name, t in tensors.items():
        assert name != "__metadata__"
        if t.dtype not in _TORCH_TO_ST:
            raise TypeError(f"{name}: unsupported dtype {t.dtype}")
        data = _tensor_bytes(t)
        assert len(data) == t.numel() * DTYPES[_TORCH_TO_ST[t.dtype]][1]
        header[name] = {
            "dtype": _TORCH_TO_ST[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-(8 + len(hjson))) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(chunks)


def save_file(tensors, path, metadata=None):
    with open(path, "wb") as f:
        f.write(serialize(tensors, metadata))


def deserialize(buf):
    """Returns (dict name -> torch.Tensor, metadata dict or None). Validates the layout."""
    if len(buf) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise ValueError(f"header length {n} runs past the end of the file ({len(buf)} bytes)")
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None)
    data = memoryview(buf)[8 + n:]
    spans, out = [], {}
    for name, info in header.items():
        dtype, width = DTYPES[info["dtype"]]
        shape = info["shape"]
        begin, end = info["data_offsets"]
        numel = 1
        for s in shape:
            numel *= s
        if end - begin != numel * width or end > len(data) or begin < 0:
            raise ValueError(f"{name}: offsets {begin}..{end} do not match shape {shape} {info['dtype']}")
        spans.append((begin, end))
        raw = bytearray(data[begin:end])  # copy: frombuffer needs a writable buffer
        if numel == 0:
            out[name] = torch.zeros(shape, dtype=dtype)
        else:
            out[name] = torch.frombuffer(raw, dtype=dtype).reshape(shape)
    spans.sort()
    pos = 0
    for b, e in spans:
        if b != pos:
            raise ValueError(f"data buffer has a gap or overlap at byte {pos}")
        pos = e
    if pos != len(data):
        raise ValueError(f"data buffer has {len(data) - pos} trailing bytes")
    return out, metadata


def load_file(path):
    with open(path, "rb") as f:
        return deserialize(f.read())


def read_header(path):
    """Returns the parsed JSON header (including __metadata__ if present)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n).decode("utf-8"))
