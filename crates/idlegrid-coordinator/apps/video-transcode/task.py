"""video-transcode task script: encodes one chunk with FFmpeg on the worker.

IDLEGRID_TASK (set by the coordinator's video partitioner) says what to do:
  {"kind": "video", "frames": N, "width": W, "height": H, "encoder": {...},
   "from": T0, "to": T1, "geometry": "crop=...,scale=..."}
      encode input/chunk.mkv's video with the encoder's codec — H.264 (libx264), HEVC
      (libx265), AV1 (SVT-AV1) or VP9 (libvpx) — in closed GOPs starting on a keyframe, with
      a fixed thread count and settings that make the same chunk always give the same bytes,
      timestamps passed through so every frame is kept, as output/chunk.mkv; with "from",
      the chunk starts at the keyframe before its frames and may end after them: only the
      frames shown from T0 to before T1 (or the end) are encoded; with "retime" (filters),
      they are first made into the task's frames at a new frame rate. With the encoder's
      "target" ({"metric": "psnr"|"ssim", "value", "crf_low", "crf_high", "max_encodes",
      "stop_within_db", "slope_db"}), the rate factor is searched: encode, measure against
      the frames encoded, try the rate factor that should get nearer, and keep the encode
      nearest the target, its rate factor and quality written in the video track's name.
      With "stills" ([{"frame": K, "name", "width", "height"}], and "upright": a filter turning
      the picture upright), each still is the K-th of the task's own frames, made like the
      encoded ones and scaled to its size, as a JPEG attached to output/chunk.mkv
      With "watermark" (a PNG in base64), the picture is written as watermark.png, which the
      coordinator's "geometry" filters lay over the frames.
  {"kind": "audio", "encoder": {...}}
      encode input/chunk.mkv's audio stream to AAC-LC or Opus as output/audio.m4a; with the
      encoder's "loudness" (LUFS), normalised to it first (EBU R128, two passes)
Progress is printed as `idlegrid:progress <fraction>` for the worker's heartbeats.
"""
import base64
import json
import math
import os
import re
import subprocess
import sys

task = json.loads(os.environ["IDLEGRID_TASK"])
enc = task["encoder"]
source = os.path.join("input", "chunk.mkv")
frames = None

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


def make_stills(stills):
    """Writes each still as a JPEG named as asked (in the working directory), from the frames
    the encode is made of; returns FFmpeg's options attaching them to a Matroska output."""
    base = source_filters + ([task["upright"]] if task.get("upright") else [])
    count = len(stills)
    graph = "[0:v]" + ",".join(base + [f"split={count}"])
    graph += "".join(f"[s{i}]" for i in range(count))
    for i, still in enumerate(stills):
        graph += (
            f";[s{i}]select='eq(n\\,{int(still['frame'])})',"
            f"scale={int(still['width'])}:{int(still['height'])}:flags=bicubic[o{i}]"
        )
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-threads", "1"] + copyts
    cmd += ["-i", source, "-filter_complex", graph]
    attach = []
    for i, still in enumerate(stills):
        cmd += [
            "-map", f"[o{i}]", "-frames:v", "1", "-fps_mode", "passthrough",
            "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-f", "image2", "-update", "1",
            still["name"],
        ]
        # Not typed as an image, which FFmpeg would read back as another video stream.
        attach += [
            "-attach", still["name"], f"-metadata:s:t:{i}", "mimetype=application/octet-stream",
        ]
    run(cmd)
    return attach


def video_command(crf, out, attach=()):
    """FFmpeg's command encoding the chunk's video to `out` (at rate factor `crf`, when given)."""
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-progress", "pipe:1",
        # One decoding thread: decoding is cheap next to encoding, and threads cost CPU.
        "-threads", "1",
    ] + copyts + ["-i", source, "-map", "0:v:0", "-an", "-sn", "-dn"]
    if source_filters:
        cmd += ["-vf", ",".join(source_filters)]
    settings = dict(enc, crf=crf) if crf is not None else enc
    cmd += ["-pix_fmt", "yuv420p"] + video_codec_args(settings, str(enc["threads"]))
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
    cmd += list(attach)
    # bitexact: no random segment id or version string, so equal encodes are equal bytes.
    cmd += ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-f", "matroska", out]
    return cmd


def run(cmd, done_before=0.0, share=1.0):
    """Runs FFmpeg, reporting its progress as the part `share` of the task after `done_before`."""
    # SVT-AV1 prints its settings on stderr unless told to report errors only.
    env = dict(os.environ, SVT_LOG="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if frames and line.startswith("frame="):
            done = min(int(line.split("=", 1)[1].strip() or 0) / frames, 1.0)
            print(f"idlegrid:progress {done_before + share * done:.3f}", flush=True)
    status = proc.wait()
    if status != 0:
        sys.exit(status)


def ssim_db(ssim):
    return -10.0 * math.log10(max(1.0 - ssim, 1e-10))


def measure(candidate, metric):
    """The candidate's quality against the frames it was made from, as FFmpeg's filter sums
    it up: luma PSNR (dB) of all frames together, or their mean luma SSIM."""
    # Both sides numbered frame by frame, so the filter pairs them whatever their clocks.
    number = "format=yuv420p,settb=1,setpts=N"
    graph = (
        f"[0:v]{','.join(source_filters + [number])}[ref];"
        f"[1:v]{number}[enc];[enc][ref]{metric}"
    )
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-v", "info", "-threads", "1",
    ] + copyts + ["-i", source, "-i", candidate, "-filter_complex", graph, "-f", "null", "-"]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"measuring {metric} failed: {proc.stderr.strip()[-500:]}")
    pattern = r"PSNR y:(inf|[0-9.]+)" if metric == "psnr" else r"SSIM Y:([0-9.]+)"
    found = re.search(pattern, proc.stderr)
    if not found:
        sys.exit(f"FFmpeg's {metric} filter reported nothing: {proc.stderr.strip()[-500:]}")
    return 100.0 if found.group(1) == "inf" else float(found.group(1))


def next_step(tried, goal_db, target, low, high):
    """The next rate factor to try, in steps of the target's crf_step (tried maps steps to
    (dB, value)), or None when the search cannot get nearer. The guess follows the line
    through the two tries nearest the goal (the measure bends with the rate factor, so near
    points say more than far ones), or the target's slope after one try; it stays strictly
    between the nearest tries above and below the goal, and within the allowed range."""
    above = [k for k, (db, _) in tried.items() if db >= goal_db]
    below = [k for k, (db, _) in tried.items() if db < goal_db]
    lo, hi = (max(above) + 1 if above else low), (min(below) - 1 if below else high)
    if lo > hi:
        return None
    nearest = sorted(tried, key=lambda k: (abs(tried[k][0] - goal_db), k))
    k1 = nearest[0]
    slope = target["slope_db"] * target["crf_step"]
    if len(nearest) >= 2:
        k2 = nearest[1]
        measured = (tried[k1][0] - tried[k2][0]) / (k2 - k1)
        if measured > 0.01:
            slope = min(measured, 3.0)
    guess = k1 + (tried[k1][0] - goal_db) / slope
    nxt = min(max(int(math.floor(guess + 0.5)), lo), hi)
    if nxt in tried:
        return None
    return nxt


def crf_text(k, step):
    """Rate factor `k` steps up, as the encoder takes it: a whole number when it is one."""
    crf = k * step
    return str(int(round(crf))) if abs(crf - round(crf)) < 1e-9 else f"{crf:g}"


if task["kind"] == "video":
    out = os.path.join("output", "chunk.mkv")
    if task.get("watermark"):
        # The picture the coordinator's filters lay over the frames ("movie=watermark.png").
        with open("watermark.png", "wb") as f:
            f.write(base64.b64decode(task["watermark"]))
    frames = max(1, int(task["frames"]))
    copyts, source_filters = [], []
    span = task.get("from")
    if span is not None:
        # The frames are picked by their times on the source's clock (to its millisecond),
        # and the kept ones start at 0.
        copyts = ["-copyts"]
        keep = f"gte(t,{float(span) - 0.0005:.6f})"
        if task.get("to") is not None:
            keep += f"*lt(t,{float(task['to']) - 0.0005:.6f})"
        # With "retime", the coordinator's filters make the task's frames at a new rate from
        # the kept ones (each output frame the latest source frame shown by its time).
        source_filters += [f"select='{keep}'", task.get("retime") or "setpts=PTS-STARTPTS"]
    if task.get("geometry"):
        # Framed to an aspect ratio: the coordinator's crop or padding around the scale.
        source_filters.append(task["geometry"])
    elif task.get("scale", True):
        source_filters.append(f"scale={task['width']}:{task['height']}:flags=bicubic")
    attach = make_stills(task["stills"]) if task.get("stills") else []
    target = enc.get("target")
    if not target:
        run(video_command(None, out, attach))
        sys.exit(0)
    # Quality target: encode, measure, and try the rate factor that should get nearer, at most
    # max_encodes times; keep the encode nearest the target (the better one on a tie).
    metric = target["metric"]
    to_db = (lambda q: q) if metric == "psnr" else ssim_db
    goal_db = to_db(float(target["value"]))
    # The search counts in steps of crf_step (a quarter for x264 and x265).
    step = float(target["crf_step"])
    low = int(math.ceil(target["crf_low"] / step - 1e-9))
    high = int(math.floor(target["crf_high"] / step + 1e-9))
    k = min(max(int(math.floor(float(enc["crf"]) / step + 0.5)), low), high)
    tried = {}
    share = 1.0 / target["max_encodes"]
    nearest = lambda c: (abs(tried[c][0] - goal_db), -tried[c][0])
    name = lambda c: f"candidate-{c}.mkv"
    best = None
    for attempt in range(target["max_encodes"]):
        run(video_command(crf_text(k, step), name(k)), attempt * share, share)
        value = measure(name(k), metric)
        tried[k] = (to_db(value), value)
        print(f"rate factor {crf_text(k, step)}: {metric} {value:.4f}", flush=True)
        # Only the nearest encode so far is kept: the task's disk is twice its output.
        if best is None or nearest(k) < nearest(best):
            if best is not None:
                os.remove(name(best))
            best = k
        else:
            os.remove(name(k))
        if abs(tried[k][0] - goal_db) <= target["stop_within_db"]:
            break
        k = next_step(tried, goal_db, target, low, high)
        if k is None:
            break
    # The choice travels with the chunk, in its video track's name (the coordinator reports
    # it and checks it); the same choice gives the same bytes on every device.
    title = f"idlegrid crf={crf_text(best, step)} {metric}={tried[best][1]:.6f}"
    run([
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", name(best),
        "-map", "0", "-c", "copy", "-metadata:s:v:0", f"title={title}",
    ] + attach + [
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-f", "matroska", out,
    ])
    os.remove(name(best))
    print("idlegrid:progress 1.000", flush=True)
    sys.exit(0)
if task["kind"] == "audio":
    out = os.path.join("output", "audio.m4a")
    if enc.get("audio_codec", "aac") == "opus":
        codec = ["-c:a", "libopus"]
    else:
        codec = ["-c:a", "aac", "-profile:a", "aac_low"]
    filters = []
    if enc.get("loudness") is not None:
        # EBU R128 in two passes: measure the track, then bring it to the target with one gain
        # (FFmpeg's loudnorm falls back to its dynamic mode where that gain would push the
        # true peak past the limit). LRA 20 (its widest) keeps the track's own dynamics.
        level = f"I={float(enc['loudness'])}:TP={float(enc['loudness_true_peak'])}:LRA=20"
        proc = subprocess.run(
            ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-v", "info", "-i", source,
             "-map", "0:a:0", "-af", f"loudnorm={level}:print_format=json", "-f", "null", "-"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        found = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", proc.stderr)
        if proc.returncode != 0 or not found:
            sys.exit(f"measuring the loudness failed: {proc.stderr.strip()[-500:]}")
        m = json.loads(found.group(0))
        print(f"loudness measured: {m['input_i']} LUFS, true peak {m['input_tp']} dBTP", flush=True)
        filters = ["-af", (
            f"loudnorm={level}:measured_I={m['input_i']}:measured_TP={m['input_tp']}"
            f":measured_LRA={m['input_lra']}:measured_thresh={m['input_thresh']}"
            f":offset={m['target_offset']}:linear=true"
        )]
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-progress", "pipe:1",
        "-i", source, "-map", "0:a:0", "-vn", "-sn", "-dn",
    ] + filters + codec + [
        "-b:a", enc["audio_bitrate"], "-ac", str(enc["audio_channels"]),
        "-ar", str(enc["audio_sample_rate"]),
        "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "mp4", out,
    ]
    frames = None
else:
    sys.exit(f"unknown task kind {task['kind']!r}")

run(cmd)
