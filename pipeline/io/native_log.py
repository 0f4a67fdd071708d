"""Keep TensorFlow's native start-up log off a stage's stderr.

TensorFlow 2.21's C++ code logs through absl before anything initialises absl's logging, and
such messages go straight to file descriptor 2 whatever ``TF_CPP_MIN_LOG_LEVEL`` says: absl's
``WARNING: All log messages before absl::InitializeLog() is called are written to STDERR``, the
oneDNN notice (``I0000 ... port.cc:153] oneDNN custom operations are on...``) at every import,
and at fit time lines such as ``E0000 ... node_def_util.cc:682] NodeDef mentions attribute
use_unbounded_threadpool ...`` or ``E0000 ... meta_optimizer.cc:967] remapper failed: ...``
(tf.data and Grappler graph rewrites that TensorFlow skips; the results are unaffected). No
environment variable turns them off, so :func:`filter_native_log` puts a filter between the
process and its stderr: fd 2 becomes a pipe read by a small child process that copies every
line to the real stderr except

* absl's "before InitializeLog" warning, and LiteRT's "Created TensorFlow Lite XNNPACK
  delegate" notice (the export stage's interpreter),
* native ``I`` (info) and ``W`` (warning) lines (``I0000 00:00:... file.cc:12] ...``),
* native ``E`` lines that match :data:`KNOWN_NOISE`.

Every other line (Python tracebacks, ``error: ...``, progress bars, native ``E`` lines not known
to be noise, fatal ``F`` lines) passes unchanged. The filter is a separate process, not a
thread, so that what a crashing process wrote last (an abort's ``F`` line, a segfault report)
still reaches the terminal; it runs in its own session (Ctrl-C does not reach it) and ends when
the last writer of the pipe is gone. A partial line (a progress bar's ``\\r`` frame) is passed on
as soon as no more text follows for a tenth of a second.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import subprocess
import sys

#: Native error lines known to be harmless, from the source file on: graph rewrites TensorFlow
#: skips, and CUDA plugins registered twice on GPU machines.
KNOWN_NOISE = (
    r"node_def_util\.cc:\d+\] NodeDef mentions attribute \w+ which is not in the op definition",
    r"meta_optimizer\.cc:\d+\] \w+ failed: ",
    r"\w+\.cc:\d+\] Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register",
)

#: One absl log line's head after the severity letter: MMDD, time (``00:00:<epoch seconds>``
#: before absl is initialised), thread id, file:line].
_STAMP = r"\d{4} [\d:.]+ +\d+ "
_HEAD = _STAMP + r"[^\]\n]+\] "

#: The whole pattern of dropped lines, for bytes.
DROPPED = re.compile(
    (r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
     r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
     rf"|[IW]{_HEAD}|E{_STAMP}(?:{'|'.join(KNOWN_NOISE)})").encode()
)

# The filter process: stdin is the pipe, stdout the real stderr. Lines end at \n or \r.
_FILTER = r"""
import os, re, select
DROPPED = re.compile({pattern!r})
LINE = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)")
pending = b""
while True:
    if pending and not select.select([0], [], [], 0.1)[0]:
        os.write(1, pending)
        pending = b""
        continue
    chunk = os.read(0, 65536)
    if not chunk:
        break
    pending += chunk
    kept, end = [], 0
    for line in LINE.finditer(pending):
        end = line.end()
        if not DROPPED.match(line.group()):
            kept.append(line.group())
    pending = pending[end:]
    if kept:
        data = b"".join(kept)
        while data:
            data = data[os.write(1, data):]
if pending:
    os.write(1, pending)
""".replace("{pattern!r}", repr(DROPPED.pattern))

_installed = False


def filter_native_log() -> bool:
    """Route this process's fd 2 through the filter; True if it is (now) on.

    Does nothing (False) when ``sys.stderr`` is not the process's own stderr (a test runner or
    Click's ``CliRunner`` captures it) or fd 2 cannot be duplicated. Call it before TensorFlow is
    imported; calling it again does nothing.
    """
    global _installed
    if _installed:
        return True
    if sys.stderr is not sys.__stderr__ or sys.stderr is None:
        return False
    try:
        if sys.stderr.fileno() != 2:
            return False
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return False
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER], stdin=read_end,
                                 stdout=real, stderr=real, start_new_session=True)
    except OSError:
        for fd in (read_end, write_end, real):
            os.close(fd)
        return False
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    atexit.register(_restore, real, child)
    _installed = True
    return True


def _restore(real: int, child: subprocess.Popen) -> None:
    """At exit: give fd 2 back and let the filter pass on what is left before returning."""
    global _installed
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os.dup2(real, 2)
    os.close(real)
    _installed = False
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)  # ends once every writer (workers too) has closed the pipe
