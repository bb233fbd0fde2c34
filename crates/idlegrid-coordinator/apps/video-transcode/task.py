"""video-transcode task script: encodes one chunk with FFmpeg on the worker.

IDLEGRID_TASK (set by the coordinator's video partitioner) says what to do:
  {"kind": "video", "frames": N, "width": W, "height": H, "encoder": {...},
   "from": T0, "to": T1}
      encode input/chunk.mkv's video with the encoder's codec — H.264 (libx264), HEVC
      (libx265), AV1 (SVT-AV1) or VP9 (libvpx) — in closed GOPs starting on a keyframe, with
      a fixed thread count and settings that make the same chunk always give the same bytes,
      timestamps passed through so every frame is kept, as output/chunk.mkv; with "from",
      the chunk starts at the keyframe before its frames and may end after them: only the
      frames shown from T0 to before T1 (or the end) are encoded
  {"kind": "audio", "encoder": {...}}
      encode input/chunk.mkv's audio stream to AAC-LC or Opus as output/audio.m4a
Progress is printed as `idlegrid:progress <fraction>` for the worker's heartbeats.
"""
import json
import os
import subprocess
import sys

task = json.loads(os.environ["IDLEGRID_TASK"])
enc = task["encoder"]
source = os.path.join("input", "chunk.mkv")

def video_codec_args(enc, threads):
    """The encoder's options for the codec asked: each pinned so that replicas agree."""
    codec = enc.get("codec", "h264")
    rate = []
    if enc.get("bitrate"):
        rate = ["-b:v", enc["bitrate"]]
        if codec != "av1":
            rate += ["-maxrate", enc["maxrate"], "-bufsize", enc["bufsize"]]
    if codec == "h264":
        return [
            "-c:v", "libx264", "-preset", enc["preset"], "-threads", threads,
            # No threaded lookahead: with it, x264's output depends on how the threads were
            # scheduled (a busy device gave other bytes), and replicas must agree byte for byte.
            "-x264-params", "stitchable=1:sync-lookahead=0",
        ] + (rate or ["-crf", str(enc["crf"])])
    if codec == "hevc":
        # Closed GOPs (the checks decode from a keyframe); SSE4 kernels only, since x265's
        # AVX2 ones round differently and devices would disagree; a fixed thread pool.
        params = f"log-level=error:open-gop=0:asm=sse4:pools={threads}:frame-threads={threads}"
        return [
            "-c:v", "libx265", "-preset", enc["preset"], "-x265-params", params,
        ] + (rate or ["-crf", str(enc["crf"])])
    if codec == "av1":
        # SVT-AV1's default key frames close their GOPs; lp fixes its threads.
        return [
            "-c:v", "libsvtav1", "-preset", enc["preset"], "-svtav1-params", f"lp={threads}",
        ] + (rate or ["-crf", str(enc["crf"])])
    if codec == "vp9":
        return [
            "-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", enc["preset"],
            "-row-mt", "1", "-threads", threads,
        ] + (rate or ["-crf", str(enc["crf"]), "-b:v", "0"])
    sys.exit(f"unknown video codec {codec!r}")


if task["kind"] == "video":
    out = os.path.join("output", "chunk.mkv")
    span = task.get("from")
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-progress", "pipe:1",
        # One decoding thread: decoding is cheap next to encoding, and threads cost CPU.
        "-threads", "1",
    ]
    filters = []
    if span is not None:
        # The frames are picked by their times on the source's clock (to its millisecond),
        # and the kept ones start at 0.
        cmd += ["-copyts"]
        keep = f"gte(t,{float(span) - 0.0005:.6f})"
        if task.get("to") is not None:
            keep += f"*lt(t,{float(task['to']) - 0.0005:.6f})"
        filters += [f"select='{keep}'", "setpts=PTS-STARTPTS"]
    cmd += ["-i", source, "-map", "0:v:0", "-an", "-sn", "-dn"]
    if task.get("scale", True):
        filters.append(f"scale={task['width']}:{task['height']}:flags=bicubic")
    if filters:
        cmd += ["-vf", ",".join(filters)]
    cmd += ["-pix_fmt", "yuv420p"] + video_codec_args(enc, str(enc["threads"]))
    cmd += ["-fps_mode", "passthrough"]
    if task.get("variable_rate"):
        # Frames at their own times: the encoder's clock is the source's, not 1/average rate,
        # which would round two frames onto one time.
        cmd += ["-enc_time_base:v", "-1"]
    if task.get("keyint"):
        # The coordinator checks a frame by decoding from the keyframe before it.
        cmd += ["-g", str(int(task["keyint"]))]
    if enc.get("keyframe_seconds"):
        # HLS renditions: keyframes at the same times in every rendition, so segments align.
        cmd += ["-force_key_frames", f"expr:gte(t,n_forced*{enc['keyframe_seconds']})"]
    if enc.get("profile"):
        cmd += ["-profile:v", enc["profile"]]
    if enc.get("level"):
        cmd += ["-level:v", enc["level"]]
    # bitexact: no random segment id or version string, so equal encodes are equal bytes.
    cmd += ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-f", "matroska", out]
    frames = max(1, int(task["frames"]))
elif task["kind"] == "audio":
    out = os.path.join("output", "audio.m4a")
    if enc.get("audio_codec", "aac") == "opus":
        codec = ["-c:a", "libopus"]
    else:
        codec = ["-c:a", "aac", "-profile:a", "aac_low"]
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-progress", "pipe:1",
        "-i", source, "-map", "0:a:0", "-vn", "-sn", "-dn",
    ] + codec + [
        "-b:a", enc["audio_bitrate"], "-ac", str(enc["audio_channels"]),
        "-ar", str(enc["audio_sample_rate"]),
        "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "mp4", out,
    ]
    frames = None
else:
    sys.exit(f"unknown task kind {task['kind']!r}")

# SVT-AV1 prints its settings on stderr unless told to report errors only.
env = dict(os.environ, SVT_LOG="1")
proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
for line in proc.stdout:
    if frames and line.startswith("frame="):
        done = int(line.split("=", 1)[1].strip() or 0)
        print(f"idlegrid:progress {min(done / frames, 1.0):.3f}", flush=True)
sys.exit(proc.wait())
