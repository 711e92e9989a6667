"""Take a CIFAR-10 copy to a GPU machine inside the checkout, compressed.

    python3 benchmarks/pack_cifar.py pack   [--data $DIET_NP_DATA] [--pack .gpu_data]
    python3 benchmarks/pack_cifar.py unpack [--pack .gpu_data] --data DIR

Where a GPU machine receives only a working tree of limited size (64 MiB, say), the
data must shrink: the four files of a 20,000-image copy are 93 MB, and plain xz saves only about a
quarter of that (pixels look like noise to a byte-level compressor).  So each pixel
is first replaced by its difference from the pixel to its left, then the result by
its difference from the row above, then from the colour plane before (uint8
arithmetic, wrapping mod 256; cumulative sums in the reverse order undo it), and
what is left compresses to about half (``pack`` prints the measured ratio).

A batch file is a pickle whose ``b'data'`` pixels lie in the file as one run of
bytes.  The pack keeps the bytes around that run (the pickle's structure, labels,
file names) and the filtered pixels as two xz streams, so the rebuilt file is the
original byte for byte; a file without such a run (``batches.meta``) is kept whole.
The copy's ``SHA256SUMS`` travels in the pack: ``unpack`` checks every rebuilt file
against it before writing and stops at a mismatch, naming the file and both sums.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import shutil
import sys
from pathlib import Path

import numpy as np

from diet_np.checkpoint import atomic_write
from diet_np.data import DataError, data_dir
from diet_np.data.cifar import IMAGE_SHAPE, read_pickle

SUMS = "SHA256SUMS"
INDEX = "index.json"


def read_sums(path) -> dict:
    """``{relative path: hex SHA-256}`` of a ``sha256sum``-style file."""
    if not Path(path).is_file():
        raise DataError(f"no checksum file {path}")
    sums = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def predict(pixels: np.ndarray) -> np.ndarray:
    """Residuals of uint8 images (N, C, H, W): differences along the width, then
    the height, then the colour planes (mod 256)."""
    for axis in (3, 2, 1):
        pixels = np.diff(pixels, axis=axis, prepend=np.uint8(0))
    return pixels


def unpredict(residuals: np.ndarray) -> np.ndarray:
    """The images again: :func:`predict` undone by cumulative sums (mod 256)."""
    for axis in (1, 2, 3):
        residuals = np.cumsum(residuals, axis=axis, dtype=np.uint8)
    return residuals


def pixel_run(path, raw: bytes):
    """``(offset, images)`` of the file's ``b'data'`` pixels as one run of bytes in
    ``raw``, or None (no pixels, or pickled in pieces)."""
    d = read_pickle(path)
    data = d.get(b"data")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == np.prod(IMAGE_SHAPE)):
        return None
    offset = raw.find(data.tobytes())
    return None if offset < 0 else (offset, len(data))


def pack(data, pack_dir, overwrite=False) -> float:
    """Pack every file that ``data/SHA256SUMS`` lists into ``pack_dir``; return the
    ratio packed / raw bytes."""
    data, pack_dir = Path(data), Path(pack_dir)
    if pack_dir.exists() and any(pack_dir.iterdir()) and not overwrite:
        raise DataError(f"{pack_dir} is not empty; pass --overwrite to replace the pack")
    sums = read_sums(data / SUMS)
    shutil.rmtree(pack_dir, ignore_errors=True)
    pack_dir.mkdir(parents=True)
    index, raw_total = [], 0
    for name, digest in sums.items():
        raw = (data / name).read_bytes()
        if sha256(raw) != digest:
            raise DataError(f"{data / name} does not match {data / SUMS}: SHA-256 {sha256(raw)}, "
                            f"listed {digest}")
        entry = {"name": name, "bytes": len(raw)}
        run = pixel_run(data / name, raw)
        rest = raw
        if run is not None:
            offset, images = run
            end = offset + images * int(np.prod(IMAGE_SHAPE))
            pixels = np.frombuffer(raw[offset:end], np.uint8).reshape(images, *IMAGE_SHAPE)
            (pack_dir / f"{Path(name).name}.pixels.xz").write_bytes(
                lzma.compress(predict(pixels).tobytes()))
            rest = raw[:offset] + raw[end:]
            entry.update(pixels_at=offset, images=images)
        (pack_dir / f"{Path(name).name}.rest.xz").write_bytes(lzma.compress(rest))
        index.append(entry)
        raw_total += len(raw)
    shutil.copyfile(data / SUMS, pack_dir / SUMS)
    (pack_dir / INDEX).write_text(json.dumps(index, indent=1) + "\n")   # last: the pack is whole
    packed = sum(f.stat().st_size for f in pack_dir.iterdir())
    ratio = packed / raw_total
    print(f"packed {len(index)} files, {raw_total / 2**20:.1f} MiB -> {packed / 2**20:.1f} MiB "
          f"in {pack_dir} (ratio {ratio:.3f})")
    return ratio


def rebuild(pack_dir, entry) -> bytes:
    """The original bytes of one packed file."""
    base = Path(pack_dir) / Path(entry["name"]).name
    rest = lzma.decompress(Path(f"{base}.rest.xz").read_bytes())
    if "pixels_at" not in entry:
        return rest
    residuals = np.frombuffer(lzma.decompress(Path(f"{base}.pixels.xz").read_bytes()), np.uint8)
    pixels = unpredict(residuals.reshape(entry["images"], *IMAGE_SHAPE)).tobytes()
    at = entry["pixels_at"]
    return rest[:at] + pixels + rest[at:]


def unpack(pack_dir, data) -> None:
    """Rebuild the packed files under ``data``, each checked against the pack's
    SHA256SUMS before it is written.  A file already there is kept if its sum
    matches and refused (never replaced) if it does not."""
    pack_dir, data = Path(pack_dir), Path(data)
    if not (pack_dir / INDEX).is_file():
        raise DataError(f"{pack_dir} holds no pack ({INDEX} missing); run "
                        "benchmarks/pack_cifar.py pack first")
    sums = read_sums(pack_dir / SUMS)
    for entry in json.loads((pack_dir / INDEX).read_text()):
        name, target = entry["name"], data / entry["name"]
        if name not in sums:
            raise DataError(f"{pack_dir / SUMS} does not list {name}: a damaged pack")
        raw = rebuild(pack_dir, entry)
        if sha256(raw) != sums[name]:
            raise DataError(f"checksum mismatch for {name}: SHA256SUMS lists {sums[name]}, the "
                            f"unpacked file has {sha256(raw)}; nothing was written for it")
        if target.exists():
            have = sha256(target.read_bytes())
            if have != sums[name]:
                raise DataError(f"{target} exists with SHA-256 {have}, not {sums[name]}; it was "
                                "left as it is (remove it or unpack elsewhere)")
        else:
            atomic_write(target, lambda f: f.write(raw))
        print(f"{target}: {len(raw):,} bytes, SHA-256 {sums[name][:16]}... verified")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="compress the data set into the pack folder")
    a.add_argument("--data", default=None, help="folder holding SHA256SUMS and "
                   "cifar-10-batches-py/ (default: $DIET_NP_DATA)")
    a.add_argument("--pack", default=".gpu_data")
    a.add_argument("--overwrite", action="store_true", help="replace an existing pack")
    b = sub.add_parser("unpack", help="rebuild and verify the data set from the pack")
    b.add_argument("--pack", default=".gpu_data")
    b.add_argument("--data", required=True, help="where to rebuild it (a DIET_NP_DATA folder)")
    args = p.parse_args(argv)
    try:
        if args.command == "pack":
            pack(data_dir(args.data), args.pack, overwrite=args.overwrite)
        else:
            unpack(args.pack, args.data)
    except DataError as exc:
        print(f"pack_cifar.py {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
