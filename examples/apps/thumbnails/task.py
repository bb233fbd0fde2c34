"""thumbnails: each chunk is a tar of some of the customer's photos (the `files` fan-out cuts
their zip or tar). For every JPEG or PNG photo, write a thumbnail no larger than `max_side`
on either side, keeping its proportions, as thumbs/<its path>.jpg (or .png), and a line about
it in an index for the chunk, index/<chunk>.jsonl.

Pillow comes with the app (requirements.txt: `idlegrid app push` bundles its wheels, and each
worker installs the one built for it). The grid's `images` validator decodes the thumbnails
and checks their size; its `zip` fan-in gathers every chunk's files in one zip with an index
of them.
"""
import io
import json
import os
import tarfile

from PIL import Image

params = json.loads(os.environ.get("IDLEGRID_PARAMS", "{}"))
max_side = int(params.get("max_side", 256))
fmt = params.get("format", "jpeg")
ext = "jpg" if fmt == "jpeg" else "png"
chunk = int(os.environ.get("IDLEGRID_CHUNK_INDEX", "0"))


def add(out, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    out.addfile(info, io.BytesIO(data))


lines = []
with tarfile.open(os.path.join("input", "photos.tar")) as photos, tarfile.open(
    os.path.join("output", "thumbs.tar"), "w", format=tarfile.PAX_FORMAT
) as out:
    for member in photos:
        if not member.isfile() or not member.name.lower().endswith((".jpg", ".jpeg", ".png")):
            continue
        with Image.open(photos.extractfile(member)) as photo:
            photo = photo.convert("RGB")
            source = photo.size
            photo.thumbnail((max_side, max_side))
            data = io.BytesIO()
            if fmt == "jpeg":
                photo.save(data, "JPEG", quality=85)
            else:
                photo.save(data, "PNG")
        name = f"thumbs/{member.name}.{ext}"
        add(out, name, data.getvalue())
        lines.append(
            {"source": member.name, "thumbnail": name, "source_size": source, "size": photo.size}
        )
    index = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
    add(out, f"index/{chunk:06}.jsonl", index.encode())
