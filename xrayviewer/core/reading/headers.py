"""Image sizes as the format headers declare them, read without decoding a pixel.

PNG, JPEG (also JPEG-LS), TIFF, BMP and JPEG 2000 headers are small and sit at known places; reading them first
lets the reader refuse a 30000 x 30000 picture, a chunk longer than its file or a header that contradicts the
DICOM data set around it before a codec allocates anything.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_TIFF_PAGES = 1024


class HeaderError(ValueError):
    """A header that is cut short or contradicts itself; the message says how, in a reader's words."""


@dataclass(frozen=True)
class Declared:
    """What a header says: size of the largest page, samples per pixel, bits per sample, pages."""

    rows: int
    columns: int
    samples: int = 1
    bits: int = 8
    pages: int = 1
    total_values: int = 0  # rows x columns x samples summed over the pages

    @property
    def values(self) -> int:
        return self.total_values or self.rows * self.columns * self.samples


def _be(data: bytes, pos: int, size: int) -> int:
    if pos < 0 or pos + size > len(data):
        raise HeaderError("the header is cut short")
    return int.from_bytes(data[pos:pos + size], "big")


def png(data: bytes) -> Declared:
    """IHDR size and colour type, after checking that every chunk fits in the file (a 4 GB chunk length does not)."""
    if data[12:16] != b"IHDR":
        raise HeaderError("the PNG header (IHDR) is missing")
    columns, rows, bits, colour = _be(data, 16, 4), _be(data, 20, 4), data[24], data[25]
    samples = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour)
    if samples is None:
        raise HeaderError(f"the PNG colour type {colour} does not exist")
    pos = 8
    while pos + 8 <= len(data):
        length, kind = _be(data, pos, 4), data[pos + 4:pos + 8]
        if length > len(data) - pos - 12:
            raise HeaderError(f"a PNG chunk ({kind.decode('latin-1')!r}) claims {length:,} bytes, more than the "
                              f"{len(data):,}-byte file holds")
        if kind == b"IEND":
            break
        pos += 12 + length
    return Declared(rows, columns, samples, bits)


_SOF = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xF7}  # F7: JPEG-LS


def jpeg(data: bytes) -> Declared:
    """The frame header (SOFn) of a JPEG or JPEG-LS stream: size, components and precision."""
    if data[:2] != b"\xff\xd8":
        raise HeaderError("the JPEG start-of-image marker is missing")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:  # stray bytes between segments: decoders skip them, so does this
            pos += 1
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            break
        if marker in _SOF:
            bits, rows, columns, samples = data[pos + 4], _be(data, pos + 5, 2), _be(data, pos + 7, 2), data[pos + 9]
            return Declared(rows, columns, samples, bits)
        pos += 2 + _be(data, pos + 2, 2)
    raise HeaderError("the JPEG stream has no frame header")


def jpeg2000(data: bytes) -> Declared:
    """The SIZ segment of a JPEG 2000 codestream (bare, or inside a JP2 file)."""
    pos = data.find(b"\xff\x4f\xff\x51", 0, 4096)
    if pos < 0:
        raise HeaderError("the JPEG 2000 codestream header (SIZ) is missing")
    siz = pos + 4
    width, height = _be(data, siz + 4, 4) - _be(data, siz + 12, 4), _be(data, siz + 8, 4) - _be(data, siz + 16, 4)
    samples = _be(data, siz + 36, 2)
    if width <= 0 or height <= 0 or samples == 0:
        raise HeaderError(f"the JPEG 2000 header declares a {width} x {height} image of {samples} components")
    bits = (_be(data, siz + 38, 1) & 0x7F) + 1
    return Declared(height, width, samples, bits)


def bmp(data: bytes) -> Declared:
    if len(data) < 30:
        raise HeaderError("the BMP header is cut short")
    columns = int.from_bytes(data[18:22], "little", signed=True)
    rows = abs(int.from_bytes(data[22:26], "little", signed=True))
    bits = int.from_bytes(data[28:30], "little")
    return Declared(rows, abs(columns), 4 if bits == 32 else 3, 8)


def tiff(data: bytes) -> Declared:
    """Every page (IFD) of a TIFF: the largest page's size and the values of all pages together."""
    order = "little" if data[:2] == b"II" else "big"

    def num(pos: int, size: int) -> int:
        if pos < 0 or pos + size > len(data):
            raise HeaderError("a TIFF directory points past the end of the file")
        return int.from_bytes(data[pos:pos + size], order)

    pages: list[tuple[int, int, int]] = []
    seen: set[int] = set()
    offset = num(4, 4)
    while offset:
        if offset in seen:
            raise HeaderError("the TIFF page directories form a loop")
        if len(pages) >= _MAX_TIFF_PAGES:
            raise HeaderError(f"the TIFF has more than {_MAX_TIFF_PAGES} pages")
        seen.add(offset)
        fields: dict[int, int] = {}
        count = num(offset, 2)
        for entry in range(offset + 2, offset + 2 + 12 * count, 12):
            tag, kind = num(entry, 2), num(entry + 2, 2)
            fields[tag] = num(entry + 8, 2) if kind == 3 else num(entry + 8, 4)
        rows, columns = fields.get(257, 0), fields.get(256, 0)
        pages.append((rows, columns, fields.get(277, 1)))
        offset = num(offset + 2 + 12 * count, 4)
    if not pages:
        raise HeaderError("the TIFF has no page")
    rows, columns, samples = max(pages, key=lambda p: p[0] * p[1] * p[2])
    return Declared(rows, columns, samples, 8, len(pages), sum(r * c * s for r, c, s in pages))


RASTER = {"PNG": png, "JPEG": jpeg, "TIFF": tiff, "BMP": bmp}
