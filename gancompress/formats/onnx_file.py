"""The integrity digest of the ONNX files ``export --format onnx`` writes.

``metadata_props`` gets ``format`` (``gancompress-onnx``), ``g_arch`` and ``digest``:
``sha256:<hex>`` over ``g_arch`` and every initializer sorted by name, each as the UTF-8 bytes of
``json.dumps([name, data_type, dims])``, a newline, then its values as little-endian bytes
(``onnx.numpy_helper.to_array(t).tobytes()``). :func:`verify` recomputes it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import InputError

FORMAT_ONNX = "gancompress-onnx"


def model_digest(model, g_arch: str) -> str:
    from onnx import numpy_helper

    h = hashlib.sha256(json.dumps(["g_arch", g_arch]).encode() + b"\n")
    for init in sorted(model.graph.initializer, key=lambda t: t.name):
        h.update(json.dumps([init.name, int(init.data_type), [int(d) for d in init.dims]]).encode() + b"\n")
        values = numpy_helper.to_array(init)
        h.update(values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes())
    return "sha256:" + h.hexdigest()


def _props(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def add_digest(path: Path, g_arch: str, extra: dict[str, str] | None = None) -> None:
    """Record ``format``, ``g_arch``, ``digest`` and ``extra`` (e.g. ``gancompress.num_classes``) in the ONNX
    file at ``path`` (rewritten in place)."""
    import onnx

    model = onnx.load(str(path))
    props = {**_props(model), **(extra or {}), "format": FORMAT_ONNX, "g_arch": g_arch,
             "digest": model_digest(model, g_arch)}
    del model.metadata_props[:]
    for key in sorted(props):
        model.metadata_props.add(key=key, value=props[key])
    onnx.save(model, str(path))


def verify(path: str | Path) -> None:
    """Refuse an ONNX file written by gancompress whose initializers or ``g_arch`` were changed."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own types for damaged files
        raise InputError(f"{path}: not a readable ONNX file ({type(exc).__name__}); export it again") from None
    props = _props(model)
    if props.get("format") != FORMAT_ONNX or "digest" not in props:
        return
    if model_digest(model, props.get("g_arch", "")) != props["digest"]:
        raise InputError(f"{path}: the integrity digest does not match the file's weights; the file was damaged or "
                         "edited after gancompress wrote it: export it again")
