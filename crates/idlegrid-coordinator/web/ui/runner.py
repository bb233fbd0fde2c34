"""The browser worker's Python side (served at /ui/runner.py, fetched by runner.js as it starts).

runner.js runs this file in a namespace of its own, which the task script cannot import, before
the script runs, so the script cannot change what it uses. It runs the script as `python -E -s
-B -u task.py` does natively, hashes the output, probes the interpreter, and stands in for
subprocess.Popen with the programs the browser has (ffmpeg.wasm, through runner.js's
`_idlegrid.run_tool`).
"""

import atexit, errno, hashlib, inspect, io, os, platform, runpy, subprocess, sys, time, types
from pyodide.ffi import run_sync, to_js
from _idlegrid import run_tool

_sha256 = hashlib.sha256
_TOOLS = ("ffmpeg", "ffprobe")


def python_version():
    return platform.python_version()


def benchmark(buffer_bytes, ms):
    """As the native worker's: MB/s of SHA-256 over a buffer of `buffer_bytes`, for about `ms`
    milliseconds (runner-rules.json's benchmark_buffer_bytes and benchmark_ms)."""
    buffer = bytes([0x5A]) * buffer_bytes
    hasher = _sha256()
    hashed = 0
    started = time.perf_counter()
    while time.perf_counter() - started < ms / 1000:
        hasher.update(buffer)
        hashed += len(buffer)
    hasher.digest()
    return round(hashed / 1e6 / (time.perf_counter() - started), 1)


def sha256(data):
    """The hex SHA-256 of a JS Uint8Array, read in 1 MiB pieces."""
    hasher = _sha256()
    for start in range(0, data.length, 1 << 20):
        hasher.update(data.subarray(start, start + (1 << 20)).to_bytes())
    return hasher.hexdigest()


def run_script(entry, env):
    """Runs the entrypoint as python -E -s -B -u would; returns its exit status."""
    os.environ.clear()
    os.environ.update(env.to_py())
    sys.argv = [entry]
    sys.path[:] = [os.path.dirname(entry)] + [p for p in sys.path if p]
    sys.dont_write_bytecode = True
    subprocess.Popen = Popen
    try:
        runpy.run_path(entry, run_name="__main__")
        status = 0
    except SystemExit as exit:
        status = _exit_status(exit.code)
    except BaseException as exc:
        _print_uncaught(exc, entry)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    return status


def _exit_status(code):
    # As CPython's handling of SystemExit at the top level.
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _print_uncaught(exc, entry):
    # The traceback from the script's first frame on, as python task.py prints it (not the
    # runpy frames above it; none at all for a SyntaxError).
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != entry:
        tb = tb.tb_next
    sys.excepthook(type(exc), exc, tb)


class Popen:
    """subprocess.Popen for the programs this worker has, ffmpeg and ffprobe (ffmpeg.wasm); any
    other is missing. The program runs to its end inside the constructor: what it writes to a
    pipe is there to read afterwards, so a caller reading proc.stdout line by line sees every
    line, only not while the program runs. Its standard input is empty."""

    __class_getitem__ = classmethod(types.GenericAlias)
    _next_pid = 1000

    def __init__(self, args, bufsize=-1, executable=None, stdin=None, stdout=None, stderr=None,
                 preexec_fn=None, close_fds=True, shell=False, cwd=None, env=None,
                 universal_newlines=None, startupinfo=None, creationflags=0,
                 restore_signals=True, start_new_session=False, pass_fds=(), *, user=None,
                 group=None, extra_groups=None, encoding=None, errors=None, text=None,
                 umask=-1, pipesize=-1, process_group=None):
        self.args = args
        self.stdin = self.stdout = self.stderr = None
        self.returncode = None
        if isinstance(args, (str, bytes, os.PathLike)):
            argv = [os.fsdecode(args)]
        else:
            argv = [os.fsdecode(a) for a in args]
        if shell:
            argv = ["/bin/sh", "-c", *argv]
        program = os.fsdecode(executable) if executable is not None else argv[0]
        if program not in _TOOLS:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if stdin not in (None, subprocess.DEVNULL):
            raise OSError(errno.ENOSYS, f"{program} cannot read standard input in the browser")
        cwd = os.path.abspath(os.fsdecode(cwd)) if cwd is not None else os.getcwd()
        if not os.path.isdir(cwd):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cwd)
        out_route, out_fd = _route(stdout)
        err_route, err_fd = ("stdout", None) if stderr == subprocess.STDOUT else _route(stderr)

        result = run_tool(program, to_js(argv[1:]), cwd, out_route, err_route)
        if inspect.isawaitable(result):
            # Where the browser can suspend WebAssembly, ffmpeg.wasm is made ready (compiled,
            # its threads started) before it runs: Python waits here as for a process.
            result = run_sync(result)
        # Absent attributes of the JS result are undefined, which Python sees as missing.
        if getattr(result, "error", None) is not None:
            raise FileNotFoundError(errno.ENOENT, f"{program} cannot start in this browser: {result.error}", program)
        self.pid = Popen._next_pid
        Popen._next_pid += 1
        self._status = result.code
        text_mode = bool(encoding or errors or text or universal_newlines)
        for target, fd, data, attr in ((stdout, out_fd, getattr(result, "out", None), "stdout"),
                                        (stderr, err_fd, getattr(result, "err", None), "stderr")):
            if data is None:
                continue
            data = data.to_bytes()
            if fd is not None:
                _write_all(fd, data)
            elif target == subprocess.PIPE:
                stream = io.BytesIO(data)
                if text_mode:
                    stream = io.TextIOWrapper(stream, encoding=encoding, errors=errors)
                setattr(self, attr, stream)

    def __repr__(self):
        return f"<{self.__class__.__name__}: returncode: {self.returncode} args: {self.args!r}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()

    def poll(self):
        if self.returncode is None:
            self.returncode = self._status
        return self.returncode

    def wait(self, timeout=None):
        return self.poll()

    def communicate(self, input=None, timeout=None):
        out = err = None
        if self.stdout is not None:
            out = self.stdout.read()
            self.stdout.close()
        if self.stderr is not None:
            err = self.stderr.read()
            self.stderr.close()
        self.wait()
        return out, err

    def send_signal(self, sig):
        # The program has already ended; as natively, signalling it then does nothing.
        self.poll()

    def terminate(self):
        self.poll()

    def kill(self):
        self.poll()


def _route(target):
    """Where a stream goes: (route for run_tool, file descriptor to write it to)."""
    if target is None:
        return "inherit", None
    if target == subprocess.PIPE:
        return "pipe", None
    if target == subprocess.DEVNULL:
        return "null", None
    fd = target if isinstance(target, int) else target.fileno()
    return "pipe", fd


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
