"""A files app: the grid cuts the customer's zip or tar into tars of a few files each (the
`files` fan-out), runs this script on each, and gathers every output tar's files into one tar
(the `archive` fan-in).

Read the chunk with tarfile; write one tar to output/ whose files have plain relative names,
each name once over the whole job (here: the input's name with .sha256 added).
"""
import hashlib
import io
import os
import tarfile

with tarfile.open(os.path.join("input", "files.tar")) as src, tarfile.open(
    os.path.join("output", "notes.tar"), "w", format=tarfile.USTAR_FORMAT
) as out:
    for member in src:
        if not member.isfile():
            continue
        data = src.extractfile(member).read()
        note = f"{len(data)} {hashlib.sha256(data).hexdigest()}  {member.name}\n".encode()
        info = tarfile.TarInfo(member.name + ".sha256")
        info.size = len(note)
        info.mtime = 0
        out.addfile(info, io.BytesIO(note))
