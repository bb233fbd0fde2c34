"""video-transcode task script: encodes one chunk with FFmpeg on the worker.

IDLEGRID_TASK (set by the coordinator's video partitioner) says what to do:
  {"kind": "video", "frames": N, "width": W, "height": H, "encoder": {...}}
      encode input/chunk.mkv's video to H.264 (libx264, closed GOP starting on an IDR frame,
      fixed thread count and no threaded lookahead so the same chunk always gives the same
      bytes, timestamps passed through so every frame is kept) as output/chunk.mkv
  {"kind": "audio", "encoder": {...}}
      encode input/chunk.mkv's first audio stream to AAC-LC as output/audio.m4a
Progress is printed as `idlegrid:progress <fraction>` for the worker's heartbeats.
"""
import json
import os
import subprocess
import sys

task = json.loads(os.environ["IDLEGRID_TASK"])
enc = task["encoder"]
source = os.path.join("input", "chunk.mkv")

if task["kind"] == "video":
    out = os.path.join("output", "chunk.mkv")
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-progress", "pipe:1",
        # One decoding thread: decoding is cheap next to encoding, and threads cost CPU.
        "-threads", "1",
        "-i", source, "-map", "0:v:0", "-an", "-sn", "-dn",
    ]
    if task.get("scale", True):
        cmd += ["-vf", f"scale={task['width']}:{task['height']}:flags=bicubic"]
    cmd += [
        "-pix_fmt", "yuv420p",
        "-c:v", "libx264", "-preset", enc["preset"],
        "-threads", str(enc["threads"]),
        # No threaded lookahead: with it, x264's output depends on how the threads were
        # scheduled (a busy device gave other bytes), and replicas must agree byte for byte.
        "-x264-params", "stitchable=1:sync-lookahead=0",
        "-fps_mode", "passthrough",
    ]
    if enc.get("bitrate"):
        cmd += ["-b:v", enc["bitrate"], "-maxrate", enc["maxrate"], "-bufsize", enc["bufsize"]]
    else:
        cmd += ["-crf", str(enc["crf"])]
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
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-progress", "pipe:1",
        "-i", source, "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-c:a", "aac", "-profile:a", "aac_low",
        "-b:a", enc["audio_bitrate"], "-ac", str(enc["audio_channels"]),
        "-ar", str(enc["audio_sample_rate"]),
        "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "mp4", out,
    ]
    frames = None
else:
    sys.exit(f"unknown task kind {task['kind']!r}")

proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
for line in proc.stdout:
    if frames and line.startswith("frame="):
        done = int(line.split("=", 1)[1].strip() or 0)
        print(f"idlegrid:progress {min(done / frames, 1.0):.3f}", flush=True)
sys.exit(proc.wait())
